/**
 * The Amazon SQS implementation of Switchyard's `Broker` contract (AWS SDK v3, `@aws-sdk/client-sqs`).
 *
 * - destination = one SQS queue (declared on first use, `SqsTopology`), or an existing queue's URL (used as it
 *   is, never created); a name ending in `.fifo` is a FIFO queue: the key is the `MessageGroupId` (order per
 *   key, parallel across keys) and the id the `MessageDeduplicationId`.
 * - publish: `SendMessageBatch` of up to 10 messages (256 KiB per call); SQS answers per entry, so
 *   `publishEach` fails only the refused message. Envelope fields and headers are packed in one message
 *   attribute (SQS allows 10); binary payloads travel base64 with a marker (`internal/envelope.ts`).
 * - subscribe: long polls driven by demand (`prefetch` messages held at most), `ack` = `DeleteMessageBatch`
 *   of the acks of one turn, `nack(delay)` = `ChangeMessageVisibility` (0 = now, at most 12 hours), the
 *   visibility of held messages extended while a handler runs; `ApproximateReceiveCount` is the attempt and
 *   the redrive policy's `maxReceiveCount` gives the delivery limit (the consumer parks the last receive with
 *   a reason before SQS moves it).
 * - no consumer groups: SQS queues are competing consumers; every subscription of a destination shares its
 *   messages whatever its `group`. Several independent groups need SNS fan-out to one queue per group, which
 *   this adapter does not emulate.
 * - browse (dead-letter operations): the parking queue itself; lag: the queue's approximate depth.
 *
 * @since 0.1.0
 */
import type { Config } from "effect"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { Broker } from "@switchyard/core"
import type { Capabilities, Envelope, Errors } from "@switchyard/core"
import { browse } from "./internal/browse.ts"
import * as Publish from "./internal/publish.ts"
import { lag, serverInfo } from "./internal/serverInfo.ts"
import * as Settler from "./internal/settler.ts"
import * as Subscription from "./internal/subscription.ts"
import * as SqsConnection from "./SqsConnection.ts"
import * as SqsTopology from "./SqsTopology.ts"

/**
 * What SQS promises. No consumer groups (competing consumers on one queue, whatever the group); no order on
 * standard queues (FIFO queues keep per-key order, but the flags describe every destination of the broker);
 * messages persist until deleted or expired; nack redelivers, with a delay; a subscriber reads what is in the
 * queue, not a replay of what others consumed; at-least-once.
 *
 * @example
 * ```ts
 * import { SqsBroker } from "@switchyard/sqs"
 * if (!SqsBroker.capabilities.consumerGroups) console.log("one queue, competing consumers")
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  consumerGroups: false,
  perKeyOrder: false,
  orderedDelivery: false,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: false,
  exactlyOnce: false,
  atMostOnce: false
}

/**
 * The options of {@link layer} (see `SqsConnection.Options`).
 *
 * @since 0.1.0
 */
export type Options = SqsConnection.Options

/**
 * The SQS attributes of a delivered message's `process` span: the message id and, on FIFO queues, the group.
 *
 * @example
 * ```ts
 * import { SqsBroker } from "@switchyard/sqs"
 * import type { Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * const attributes = SqsBroker.telemetryAttributes(envelope) // { "messaging.message.id": "…" }
 * ```
 * @since 0.1.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => ({
  ...(envelope.coordinates.offset !== undefined ? { "messaging.message.id": envelope.coordinates.offset } : {}),
  ...(envelope.coordinates.lane !== undefined ? { "messaging.aws.sqs.message_group_id": envelope.coordinates.lane } : {})
})

/**
 * Builds the broker from the connection and topology services.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Broker } from "@switchyard/core"
 * import { SqsBroker } from "@switchyard/sqs"
 * const brokerLayer = Layer.effect(Broker.Broker, SqsBroker.make)
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<
  Broker.BrokerShape,
  never,
  SqsConnection.SqsConnection | SqsTopology.SqsTopology | Scope.Scope
> = Effect.gen(function*() {
  const connection = yield* SqsConnection.SqsConnection
  const topology = yield* SqsTopology.SqsTopology
  const settler = yield* Settler.make(connection.client)
  const { publish, publishEach } = Publish.make(connection, topology)
  const context: Subscription.Context = { connection, topology, settler }
  return Broker.Broker.of({
    system: "aws_sqs",
    capabilities,
    publish,
    publishEach,
    // HTTP calls are independent and a caller awaits its confirm before its next publish, so several coalesced
    // batches in flight reorder nothing one caller sent (FIFO order within one publish call is kept by
    // internal/publish.ts, which sends its chunks one after the other)
    publishConcurrency: 8,
    subscribe: (destination, options) => Subscription.subscribe(context, destination, options),
    telemetryAttributes,
    browse: browse(connection, topology, settler),
    lag: lag(topology),
    serverInfo: serverInfo(connection)
  })
})

/**
 * The broker on a connection layer: `Broker` plus `SqsTopology` (the connection's layer is kept). The topology
 * layer is made per call: the shared `SqsTopology.layer` would be memoized across brokers built in one program,
 * and a second broker would get the first one's topology (its connection and declared queues).
 */
const onConnection = <E>(connection: Layer.Layer<SqsConnection.SqsConnection, E>) =>
  Layer.effect(Broker.Broker, make).pipe(
    Layer.provideMerge(Layer.effect(SqsTopology.SqsTopology, SqsTopology.make)),
    Layer.provideMerge(connection)
  )

/**
 * The SQS broker layer: `Broker`, plus the native `SqsConnection` and `SqsTopology` services.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { SqsBroker } from "@switchyard/sqs"
 * const layer = SqsBroker.layer({
 *   region: "eu-west-1",
 *   accessKeyId: "AKIA…",
 *   secretAccessKey: Redacted.make("…"),
 *   queues: { "orders.fifo": { maxReceiveCount: 5 } }
 * })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<Broker.Broker | SqsConnection.SqsConnection | SqsTopology.SqsTopology, Errors.ConnectionError> =>
  onConnection(SqsConnection.layer(options))

/**
 * The broker layer from configuration (by default `SqsConnection.config()`, i.e. `SQS_*` environment
 * variables); bad configuration fails with `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { SqsBroker, SqsConnection } from "@switchyard/sqs"
 * const layer = SqsBroker.layerConfig(SqsConnection.config("SQS"))
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Wrap<Options> = SqsConnection.config()
): Layer.Layer<Broker.Broker | SqsConnection.SqsConnection | SqsTopology.SqsTopology, Errors.ConnectionError> =>
  onConnection(SqsConnection.layerConfig(config))
