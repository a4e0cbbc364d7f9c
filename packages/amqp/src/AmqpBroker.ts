/**
 * The RabbitMQ implementation of Switchyard's byte-level `Broker` contract, on amqplib.
 *
 * - a destination is a durable topic exchange; a consumer group is a durable queue `<destination>.<group>`
 *   bound to it with `#` (both provisioned on first use, idempotently, unless the user's topology declares them);
 * - publishing goes through one confirm channel per connection: a batch is written without waiting
 *   (pipelined, honouring the channel's `drain`), then all its confirms are awaited; a broker nack is a
 *   `PublishError`; a message no queue is bound for is logged (default), dropped, or a `PublishError` of kind
 *   `Unroutable` (see {@link Options.unroutable}); messages are persistent. Errors carry an `Errors.Reason`
 *   classified from amqplib's codes (the broker's text, the reply code or errno): what the client refuses to
 *   encode (`Invalid`, `TooLarge`) fails at once;
 * - a subscription owns a channel with `basic.qos(prefetch)`; acks go to the channel that delivered, and a
 *   delivery from a channel that has since closed is never acked on a new one (its ack is an `AckError`: the
 *   broker redelivers it); the acks of one turn of the event loop go out as one `basic.ack multiple` below
 *   the lowest delivery still in flight (acks above it go one by one, at once; a nack is never delayed);
 * - `nack({ delay })` republishes the message to a per-delay retry queue whose TTL dead-letters it back to the
 *   work queue (no plugin), then acks the original; when the delayed copy cannot be scheduled, it logs a warning
 *   and requeues the original at once instead;
 * - the connection, the publisher's channel and every subscription's channel are supervised by the kit's
 *   `Supervisor` (re-attached on the reconnect schedule); declarations go through one `Provisioner`;
 * - `browse` (the base of core's `DeadLetters`) reads the parking queue named after a dead-letter destination
 *   itself: it ends after the messages retained at open, `ack` removes one, `nack` keeps it (requeued when the
 *   read closes); `lag` is a group queue's ready messages; `serverInfo` comes from the server properties.
 *
 * @since 0.1.0
 */
import type { Capabilities, Envelope } from "@switchyard/core"
import { Broker as BrokerModule, Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import { Clock, Config, Duration, Effect, Layer } from "effect"
import * as AmqpConnection from "./AmqpConnection.ts"
import * as AmqpRpc from "./AmqpRpc.ts"
import * as Browse from "./internal/browse.ts"
import * as AmqpEnvelope from "./internal/envelope.ts"
import * as Provision from "./internal/provision.ts"
import * as Publish from "./internal/publish.ts"
import * as ServerInfo from "./internal/serverInfo.ts"
import * as Subscription from "./internal/subscription.ts"

/**
 * Header names that map to native AMQP properties on publish (and are removed from the headers).
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * const headers = { [AmqpBroker.AmqpHeaders.priority]: "5", [AmqpBroker.AmqpHeaders.expiration]: "60000" }
 * ```
 * @since 0.1.0
 */
export const AmqpHeaders: {
  /** `reply-to` property. */
  readonly replyTo: "x-amqp-reply-to"
  /** `priority` property (0-255, needs a queue with `x-max-priority`; other values are not sent). */
  readonly priority: "x-amqp-priority"
  /** `expiration` property: per-message TTL in milliseconds (a non-negative integer; other values are not sent). */
  readonly expiration: "x-amqp-expiration"
  /** `type` property: the message's type name. */
  readonly type: "x-amqp-type"
  /** The delivery attempt carried by delayed retries. */
  readonly attempt: "x-switchyard-attempt"
} = AmqpEnvelope.AmqpHeaders

/**
 * What RabbitMQ promises through this adapter.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * AmqpBroker.capabilities.redeliveryDelay // true
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  consumerGroups: true,
  perKeyOrder: false,
  orderedDelivery: true,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: false,
  exactlyOnce: false,
  atMostOnce: false
}

/**
 * Options of the RabbitMQ broker: the connection's, plus publishing and queue settings.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * const options: AmqpBroker.Options = { url: "amqp://127.0.0.1", queueType: "quorum", unroutable: "fail" }
 * ```
 * @since 0.1.0
 */
export interface Options extends AmqpConnection.Options {
  /** Queue type of auto-provisioned consumer-group queues (default `"classic"`). */
  readonly queueType?: "classic" | "quorum" | undefined
  /**
   * What happens to a message no queue is bound for (no consumer group has subscribed to the destination yet,
   * and the topology declares none). RabbitMQ keeps nothing for such a message, as NATS does for a subject
   * nobody listens on:
   * - `"warn"` (default): the publish succeeds and a warning names the destination and the message id
   *   (published with AMQP `mandatory`; the broker returns the message, which costs its bytes once);
   * - `"drop"`: the publish succeeds silently (no `mandatory`, no returns);
   * - `"fail"`: the publish fails with a `PublishError` of kind `Unroutable` (not retryable).
   *
   * To keep messages published before the first consumer starts, declare the group's queue up front:
   * `topology: AmqpTopology.consumerGroup("orders", "email")`.
   *
   * @since 0.2.0
   */
  readonly unroutable?: "warn" | "drop" | "fail" | undefined
  /**
   * @deprecated Use `unroutable`: `mandatory: true` is `unroutable: "fail"`, `false` is `"drop"`.
   */
  readonly mandatory?: boolean | undefined
  /** Bound on one `publish` call and on opening a subscription, including waiting for a reconnect (default 30 seconds). */
  readonly publishTimeout?: Duration.Input | undefined
}

/** The broker's own options (those of {@link Options} that are not the connection's). */
type BrokerOptions = Omit<Options, keyof AmqpConnection.Options>

/**
 * The RabbitMQ attributes of a delivered message's `process` span (OpenTelemetry semantic conventions):
 * the routing key it was published with and its delivery tag.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * import type { Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * AmqpBroker.telemetryAttributes(envelope) // { "messaging.rabbitmq.destination.routing_key": "eu", ... }
 * ```
 * @since 0.2.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => {
  const { deliveryTag, routingKey } = envelope.coordinates
  return {
    ...(routingKey !== undefined ? { "messaging.rabbitmq.destination.routing_key": routingKey } : {}),
    ...(deliveryTag !== undefined ? { "messaging.rabbitmq.message.delivery_tag": deliveryTag } : {})
  }
}

const unroutableOf = (options: BrokerOptions): Publish.Unroutable =>
  options.unroutable ?? (options.mandatory === undefined ? "warn" : options.mandatory ? "fail" : "drop")

/**
 * Builds the `Broker` service on an `AmqpConnection`, in the current scope. Closing the scope waits for
 * outstanding confirms (bounded) and closes the publishing channel.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Broker } from "@switchyard/core"
 * import { AmqpBroker, AmqpConnection } from "@switchyard/amqp"
 * const BrokerLive = Layer.effect(Broker.Broker, AmqpBroker.make({})).pipe(
 *   Layer.provide(AmqpConnection.layer({ url: "amqp://127.0.0.1" }))
 * )
 * ```
 * @since 0.1.0
 */
export const make = Effect.fn("AmqpBroker.make")(function*(options: BrokerOptions) {
  const connection = yield* AmqpConnection.AmqpConnection
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const timeout = Duration.fromInputUnsafe(options.publishTimeout ?? "30 seconds")
  const plan = Provision.plan(connection.topology, options.queueType ?? "classic")
  const publisher = yield* Publish.make(connection, { unroutable: unroutableOf(options), timeout })
  const receipt = (destination: string, m: Envelope.OutgoingMessage): Envelope.PublishReceipt => ({ id: m.id, coordinates: { destination } })
  const publish = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>, onConfirmed?: BrokerModule.OnConfirmed) =>
    messages.length === 0 ? Effect.succeed([]) : connection.declare(plan.destination(destination)).pipe(
      Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason })),
      Effect.andThen(publisher.publish(
        { destination, exchange: destination },
        messages,
        onConfirmed === undefined ? undefined : (index) => onConfirmed(index, receipt(destination, messages[index]!))
      )),
      Effect.as(messages.map((m) => receipt(destination, m)))
    )
  return BrokerModule.Broker.of({
    system: "rabbitmq",
    capabilities,
    publish,
    // one confirm channel pipelines any number of batches, each confirmed by delivery tag, in write order
    publishConcurrency: 8,
    subscribe: Subscription.subscribe({ connection, plan, publish: publisher, now, timeout }),
    telemetryAttributes,
    // a browse reads the parking queue named after the destination; the adapter's own `<topic>.dlq` is declared
    // first (nothing may have been dead-lettered yet), any other name must already have one
    browse: Browse.make({
      connection,
      ensureParking: (name) => name.endsWith(".dlq") ? connection.declare(plan.destination(name)) : Effect.void,
      now
    }),
    lag: ServerInfo.lag(connection),
    serverInfo: ServerInfo.serverInfo(connection)
  })
})

/**
 * The RabbitMQ broker as a Layer: `Broker`, plus the native `AmqpConnection` and `AmqpRpc` services.
 * A wrong password or an unreachable host fails the Layer with a `ConnectionError` within `connectTimeout`.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { AmqpBroker } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layer({
 *   hostname: "127.0.0.1", username: "guest", password: Redacted.make("guest"),
 *   topology: { exchanges: [{ name: "audit", type: "fanout" }] }
 * })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<BrokerModule.Broker | AmqpConnection.AmqpConnection | AmqpRpc.AmqpRpc, Errors.ConnectionError> =>
  Layer.mergeAll(Layer.effect(BrokerModule.Broker, make(options)), AmqpRpc.layer).pipe(
    Layer.provideMerge(AmqpConnection.layer(options))
  )

/**
 * The broker's options from configuration: {@link AmqpConnection.config} under the same prefix, plus
 * `<P>_QUEUE_TYPE` (`classic` or `quorum`).
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { AmqpBroker, AmqpTopology } from "@switchyard/amqp"
 * const orders = AmqpBroker.config("ORDERS_AMQP")
 * const withGroup = AmqpBroker.config().pipe(
 *   Config.map((options) => ({ ...options, topology: AmqpTopology.consumerGroup("orders", "email") }))
 * )
 * ```
 * @since 0.3.0
 */
export const config = (prefix = "AMQP"): Config.Config<Options> =>
  Config.all({
    connection: AmqpConnection.config(prefix),
    queueType: Config.Literals(["classic", "quorum"], `${prefix}_QUEUE_TYPE`).pipe(Config.withDefault("classic" as const))
  }).pipe(Config.map(({ connection, queueType }): Options => ({ ...connection, queueType })))

/**
 * The RabbitMQ broker configured from a `Config.Wrap<Options>` (by default {@link config}: the `AMQP_*`
 * environment variables). A missing or malformed value fails with a `ConnectionError` of reason `Invalid`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { AmqpBroker } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layerConfig()
 * const Orders = AmqpBroker.layerConfig(AmqpBroker.config("ORDERS_AMQP"))
 * const Explicit = AmqpBroker.layerConfig({ url: Config.Redacted("RABBIT_URL"), queueType: Config.succeed("quorum" as const) })
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: Config.Wrap<Options> = config()
): Layer.Layer<BrokerModule.Broker | AmqpConnection.AmqpConnection | AmqpRpc.AmqpRpc, Errors.ConnectionError> =>
  Layer.unwrap(Effect.map(ConnectionOptions.fromConfig<Options>("rabbitmq", options), layer))
