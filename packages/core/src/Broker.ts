/**
 * The broker contract: the small, byte-level interface every broker adapter implements (in-memory, Kafka,
 * RabbitMQ, NATS). Everything typed — codecs, retries, dead letters, ordering, idempotency, telemetry —
 * is built once in core on top of it (see `Publisher`, `Subscriber`, `Consumer`).
 *
 * Adapters provide it as a Layer; `Switchyard.on(brokerLayer)` then adds the typed `Publisher` and
 * `Subscriber` services.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Result, Scope, Stream } from "effect"
import { Context } from "effect"
import type { Capabilities } from "./Capabilities.ts"
import type { Envelope, OutgoingMessage, PublishReceipt } from "./Envelope.ts"
import type { AckError, PublishError, SubscribeError } from "./Errors.ts"

/**
 * Where a new consumer group starts reading.
 *
 * @category models
 * @since 0.1.0
 */
export type StartFrom = "earliest" | "latest"

/**
 * Options of a subscription.
 *
 * @category models
 * @since 0.1.0
 */
export interface SubscribeOptions {
  /** Consumer group: members of one group compete for messages, different groups each get all. */
  readonly group: string
  /**
   * The most deliveries this member holds unacknowledged; the backpressure bound (AMQP prefetch,
   * JetStream max_ack_pending, Kafka per-partition buffer).
   */
  readonly prefetch: number
  /** Where a group that has no position yet starts. */
  readonly startFrom: StartFrom
}

/**
 * Options of a negative acknowledgement.
 *
 * @category models
 * @since 0.1.0
 */
export interface NackOptions {
  /** Postpone the redelivery (brokers with the `redeliveryDelay` capability). */
  readonly delay?: Duration.Input | undefined
}

/**
 * One message handed to a subscriber, with the effects that settle it. `ack` and `nack` are idempotent:
 * only the first settlement counts.
 *
 * @category models
 * @since 0.1.0
 */
export interface RawDelivery {
  readonly envelope: Envelope
  readonly ack: Effect.Effect<void, AckError>
  readonly nack: (options?: NackOptions) => Effect.Effect<void, AckError>
  /**
   * How many deliveries of this message may run a handler, when the broker enforces a limit (JetStream
   * `maxDeliver`). A delivery whose `envelope.attempt` exceeds it is the broker's last: no earlier one was
   * acked (the consumer crashed, stalled or was stopped each time, or nacked it). The `Consumer`
   * dead-letters it instead of running the handler again, so the broker never drops it silently.
   */
  readonly deliveryLimit?: number | undefined
}

/**
 * An open subscription. It lives in the Scope it was opened in: closing the scope cancels it at the
 * broker, and unacknowledged deliveries are redelivered to other members.
 *
 * @category models
 * @since 0.1.0
 */
export interface Subscription {
  /** Deliveries, bounded by `prefetch`. Ends when the subscription is closed. */
  readonly deliveries: Stream.Stream<RawDelivery, SubscribeError>
  /**
   * Stops intake without closing the subscription: the broker delivers nothing more to this member and takes
   * back the deliveries buffered but not yet taken from `deliveries`, so other members get them at once;
   * deliveries already taken can still be settled. The `Consumer` runs it when a graceful shutdown begins
   * (its drain may take a while). Optional.
   */
  readonly stopIntake?: Effect.Effect<void> | undefined
}

/**
 * Options of {@link BrokerShape.browse}.
 *
 * @category models
 * @since 0.2.0
 */
export interface BrowseOptions {
  /** The most deliveries held unsettled at once (the read's backpressure bound). */
  readonly prefetch: number
}

/**
 * An operator's read of a parking destination (a dead-letter destination): every message it retains at the
 * time of opening, whichever group put it there, outside any consumer group's competition. The stream
 * **ends** once every message retained when the read was opened has been delivered. `ack` removes the
 * message from the destination for good; `nack`, or leaving it unsettled when the read's scope closes,
 * leaves it where it is (its position may change, e.g. a requeue on RabbitMQ). Two reads of one destination
 * at once are not supported.
 *
 * @category models
 * @since 0.2.0
 */
export interface Browse {
  readonly deliveries: Stream.Stream<RawDelivery, SubscribeError>
  /** How many messages the destination retained when the read was opened. */
  readonly retained: number
}

/**
 * What a broker says about itself (`switchyard health`).
 *
 * @category models
 * @since 0.2.0
 */
export interface ServerInfo {
  /** The broker product, e.g. `"RabbitMQ"`, `"nats-server"`, `"Apache Kafka"`. */
  readonly product: string
  /** Its version, when the broker tells (`"unknown"` otherwise). */
  readonly version: string
  /** Anything else worth showing (cluster id, node name, JetStream on/off…). */
  readonly details: Readonly<Record<string, string>>
}

/**
 * Told by a broker's `publish` / `publishEach`, as each message is confirmed, before the call resolves: the
 * message's index in the call and its receipt. Optional for brokers (a broker that confirms a call as a whole
 * never calls it); the `Publisher` completes the caller of a coalesced single publish at its own confirm, so
 * that it publishes again while the rest of its batch is still in flight, as it would on the raw client.
 * Synchronous, called at most once per index and attempt; a message it was called for may still be part of
 * a failed call (a later message refused), and it was nonetheless confirmed.
 *
 * @example
 * ```ts
 * import type { Broker } from "@switchyard/core"
 * const confirmedIds: Array<string> = []
 * const onConfirmed: Broker.OnConfirmed = (_index, receipt) => void confirmedIds.push(receipt.id)
 * ```
 * @category models
 * @since 0.4.0
 */
export type OnConfirmed = (index: number, receipt: PublishReceipt) => void

/**
 * The byte-level broker service.
 *
 * @category models
 * @since 0.1.0
 */
export interface BrokerShape {
  /** A short name for logs and telemetry (`"kafka"`, `"rabbitmq"`, `"nats"`, `"memory"`). */
  readonly system: string
  readonly capabilities: Capabilities
  /**
   * Publishes messages to a destination, in order. Resolves when the broker confirmed every message;
   * if one fails, it and the ones after it fail (order is kept). A client that confirms messages one by one
   * calls `onConfirmed` with each message's index and receipt as its confirm arrives (see {@link OnConfirmed}).
   */
  readonly publish: (
    destination: string,
    messages: ReadonlyArray<OutgoingMessage>,
    onConfirmed?: OnConfirmed
  ) => Effect.Effect<ReadonlyArray<PublishReceipt>, PublishError>
  /**
   * Optional: publishes messages like `publish`, answering for each message (a receipt or its own error)
   * instead of failing the call at the first one the broker refused; a failure of the call itself fails
   * every message. The `Publisher` sends the single publishes of many callers as one batch through it, so
   * one refused message fails only its own caller. Without it, a failed batch fails every caller in it.
   */
  readonly publishEach?:
    | ((
      destination: string,
      messages: ReadonlyArray<OutgoingMessage>,
      onConfirmed?: OnConfirmed
    ) => Effect.Effect<ReadonlyArray<Result.Result<PublishReceipt, PublishError>>, PublishError>)
    | undefined
  /**
   * Optional: how many `publish`/`publishEach` calls to one destination may be in flight at once (default 1).
   * The `Publisher` keeps up to this many coalesced batches of single publishes in flight, so that the next
   * batch does not wait a whole confirm round trip. Raise it only when the client pipelines calls on one
   * connection and confirms each on its own without reordering what one caller sent (AMQP publisher
   * confirms, NATS); keep 1 where the client serialises calls or a second call in flight is unsafe.
   */
  readonly publishConcurrency?: number | undefined
  /**
   * Opens a subscription in the current scope. Resolves once the broker has registered it, so that
   * messages published afterwards are delivered to it.
   */
  readonly subscribe: (
    destination: string,
    options: SubscribeOptions
  ) => Effect.Effect<Subscription, SubscribeError, Scope.Scope>
  /**
   * Broker-specific OpenTelemetry attributes of a delivered message (Kafka partition, offset and key,
   * RabbitMQ routing key, JetStream stream sequence), added to its `process` span. Optional.
   */
  readonly telemetryAttributes?: ((envelope: Envelope) => Readonly<Record<string, string | number>>) | undefined
  /**
   * Reads a parking destination as an operator (see {@link Browse}); the base of `DeadLetters`. Brokers that
   * retain dead letters implement it (RabbitMQ: the parking queue itself; JetStream: the stream, `ack`
   * deletes the message; Kafka: the topic, `ack` records the removal; memory). Absent on brokers that keep
   * nothing (core NATS). Optional.
   */
  readonly browse?: ((destination: string, options: BrowseOptions) => Effect.Effect<Browse, SubscribeError, Scope.Scope>) | undefined
  /**
   * How many messages of a destination a group has not consumed yet, where the broker can tell (Kafka: end
   * offsets minus committed offsets; JetStream: the consumer's `num_pending` + unacked; RabbitMQ: the group
   * queue's depth). Optional.
   */
  readonly lag?: ((destination: string, group: string) => Effect.Effect<number, SubscribeError>) | undefined
  /** What the broker says about itself (product, version). Optional. */
  readonly serverInfo?: Effect.Effect<ServerInfo, SubscribeError> | undefined
}

/**
 * The broker service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Broker } from "@switchyard/core"
 * const system = Broker.Broker.useSync((broker) => broker.system)
 * ```
 * @category services
 * @since 0.1.0
 */
export class Broker extends Context.Service<Broker, BrokerShape>()("@switchyard/core/Broker") {}

/**
 * Default subscription options.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultSubscribeOptions: SubscribeOptions = { group: "default", prefetch: 256, startFrom: "earliest" }

/**
 * The smallest default `prefetch` on an at-most-once broker (core NATS). Such a broker has no
 * acknowledgements to pace the sender, so the subscription's bounded buffer is all that absorbs a burst (a
 * publisher's batch of 500 arrives in one socket read); what does not fit is dropped and counted.
 *
 * @category defaults
 * @since 0.2.0
 */
export const atMostOncePrefetch = 8192

/**
 * The `prefetch` a subscription gets when the caller sets none: `ackedDefault` on brokers with
 * acknowledgements, at least {@link atMostOncePrefetch} on at-most-once brokers.
 *
 * @example
 * ```ts
 * import { Broker, Capabilities } from "@switchyard/core"
 * Broker.defaultPrefetch(Capabilities.none, 16) // 16
 * Broker.defaultPrefetch({ ...Capabilities.none, atMostOnce: true }, 16) // 8192
 * ```
 * @category defaults
 * @since 0.2.0
 */
export const defaultPrefetch = (capabilities: Capabilities, ackedDefault: number): number =>
  capabilities.atMostOnce ? Math.max(ackedDefault, atMostOncePrefetch) : ackedDefault
