/**
 * JetStream topology as data (streams and the settings of the durable consumers made for consumer groups)
 * and the admin operations on it: the `NatsTopology` service, next to the JetStream `Broker`, with the
 * nats.js clients, the stream holding a destination (provisioned on first use), and stream declaration,
 * lookup and deletion. Core NATS has no topology.
 *
 * @since 0.3.0
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream"
import type { Errors } from "@switchyard/core"
import type { Duration, Effect, Option } from "effect"
import { Context } from "effect"

/**
 * Stream settings (also the defaults of streams provisioned on first use).
 *
 * @example
 * ```ts
 * import type { NatsTopology } from "@switchyard/nats"
 * const settings: NatsTopology.StreamSettings = { storage: "memory", maxMessages: 100_000 }
 * ```
 * @since 0.3.0
 */
export interface StreamSettings {
  readonly retention?: "limits" | "interest" | "workqueue" | undefined
  readonly storage?: "file" | "memory" | undefined
  readonly maxAge?: Duration.Input | undefined
  readonly maxMessages?: number | undefined
  readonly maxBytes?: number | undefined
  readonly maxMessageSize?: number | undefined
  /** Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate (default 2 minutes). */
  readonly duplicateWindow?: Duration.Input | undefined
  readonly replicas?: number | undefined
  readonly discard?: "old" | "new" | undefined
}

/**
 * A JetStream stream declared as data. Created when missing, updated when it differs.
 *
 * @example
 * ```ts
 * import type { NatsTopology } from "@switchyard/nats"
 * const orders: NatsTopology.StreamDeclaration = {
 *   name: "ORDERS", subjects: ["orders.>"], retention: "limits", storage: "file",
 *   maxAge: "7 days", duplicateWindow: "2 minutes"
 * }
 * ```
 * @since 0.3.0
 */
export interface StreamDeclaration extends StreamSettings {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
}

/**
 * Settings of the durable pull consumers created for subscriptions (one per group and destination).
 *
 * @example
 * ```ts
 * import type { NatsTopology } from "@switchyard/nats"
 * const consumer: NatsTopology.ConsumerSettings = { ackWait: "30 seconds", maxDeliver: 5 }
 * ```
 * @since 0.3.0
 */
export interface ConsumerSettings {
  /** How long the server waits for an ack before redelivering (default 30 seconds). */
  readonly ackWait?: Duration.Input | undefined
  /**
   * Deliveries of a message that may run a handler (default unlimited, -1). The server is asked for one
   * more: that last delivery carries `deliveryLimit` and the `Consumer` dead-letters it (with the reason)
   * instead of running the handler again, so a message whose every attempt crashed the consumer is parked,
   * not dropped by the server.
   */
  readonly maxDeliver?: number | undefined
  /** Redelivery delays after ack-wait expiries (JetStream `backoff`). */
  readonly backoff?: ReadonlyArray<Duration.Input> | undefined
  /** Send `working()` for every unsettled delivery before ack-wait runs out (default true). */
  readonly heartbeat?: boolean | undefined
  /** Remove the durable consumer after this much inactivity (default: never). */
  readonly inactiveThreshold?: Duration.Input | undefined
}

/**
 * The JetStream topology service, provided by `NatsBroker.layer` next to the `Broker`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsTopology } from "@switchyard/nats"
 * const stored = Effect.gen(function*() {
 *   const topology = yield* NatsTopology.NatsTopology
 *   const stream = yield* topology.streamFor("orders")
 *   return yield* Effect.promise(() => topology.manager.streams.info(stream))
 * })
 * ```
 * @since 0.3.0
 */
export class NatsTopology extends Context.Service<NatsTopology, {
  readonly client: JetStreamClient
  readonly manager: JetStreamManager
  /** The stream holding a destination, provisioned on first use (declared once; forgotten on reconnect). */
  readonly streamFor: (destination: string) => Effect.Effect<string, Errors.SubscribeError>
  /** The stream holding a destination, without provisioning one (`None` when no stream holds it). */
  readonly findStream: (destination: string) => Effect.Effect<Option.Option<string>, Errors.SubscribeError>
  /** Creates a stream, or updates it in place when it exists. */
  readonly declareStream: (declaration: StreamDeclaration) => Effect.Effect<void, Errors.SubscribeError>
  /** Deletes a stream and everything it stores (no-op when it does not exist). */
  readonly deleteStream: (name: string) => Effect.Effect<void, Errors.SubscribeError>
}>()("@switchyard/nats/NatsTopology") {}
