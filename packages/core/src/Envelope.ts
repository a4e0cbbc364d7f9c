/**
 * The message envelope: everything around a payload that travels with it.
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import type { Headers } from "./Headers.ts"
import { randomUuid } from "./internal/uuid.ts"

/**
 * Where a delivered message sits in its broker. Each broker fills the fields it has: Kafka a partition and
 * an offset, JetStream a stream sequence, AMQP a delivery tag. `lane` is the ordering lane the broker
 * guarantees order within (a partition), used by the consumer's `"partition"` ordering mode.
 *
 * @category models
 * @since 0.1.0
 */
export interface Coordinates {
  readonly destination: string
  readonly lane?: string | undefined
  readonly partition?: number | undefined
  readonly offset?: string | undefined
  readonly sequence?: number | undefined
  readonly deliveryTag?: number | undefined
  /** The routing key the message was published with (AMQP). */
  readonly routingKey?: string | undefined
}

/**
 * A message ready for a broker: the payload is already encoded.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutgoingMessage {
  readonly id: string
  readonly key: string | undefined
  /**
   * The key's exact bytes, when the broker's key is binary and not valid UTF-8 text (a Kafka key written by
   * Java's `LongSerializer`). Adapters with binary keys publish these bytes instead of `key`, so dead letters,
   * redrives and republishes keep the original key and partition. `key` then holds a lossy text form for
   * logs and ordering lanes.
   */
  readonly keyBytes?: Uint8Array | undefined
  /**
   * The broker-level deduplication id, when it must differ from `id`: a redriven copy keeps the envelope id
   * (so groups that processed it still skip it) but must not be swallowed by broker-side deduplication
   * (JetStream `Nats-Msg-Id`). Adapters with broker-side deduplication use it instead of `id` when set.
   */
  readonly dedupId?: string | undefined
  readonly headers: Headers
  /** Epoch milliseconds. */
  readonly timestamp: number
  readonly contentType: string
  readonly payload: Uint8Array
  readonly correlationId: string | undefined
  readonly causationId: string | undefined
}

/**
 * A delivered message, with its delivery attempt (1 on the first delivery) and broker coordinates.
 *
 * @category models
 * @since 0.1.0
 */
export interface Envelope extends OutgoingMessage {
  readonly attempt: number
  readonly coordinates: Coordinates
  /**
   * Where `id` came from: `"message"` (the publisher set it), `"broker"` (derived from broker coordinates
   * that stay the same on every redelivery, e.g. Kafka topic/partition/offset or a JetStream stream
   * sequence), or `"generated"` (the message carried none and the broker has no stable coordinate, so the
   * id is fresh per delivery). Idempotency never treats a `"generated"` id as a duplicate. Absent means
   * `"message"`.
   */
  readonly idSource?: IdSource | undefined
}

/**
 * See `Envelope.idSource`.
 *
 * @category models
 * @since 0.2.0
 */
export type IdSource = "message" | "broker" | "generated"

/**
 * What the broker confirmed for one published message.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishReceipt {
  readonly id: string
  readonly coordinates: Coordinates
}

/**
 * Per-publish metadata a caller may set; everything is optional and has a sensible default
 * (a fresh id, the topic's key function, the current time).
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  readonly id?: string | undefined
  readonly key?: string | undefined
  readonly headers?: Headers | undefined
  readonly correlationId?: string | undefined
  readonly causationId?: string | undefined
  readonly timestamp?: number | undefined
}

/**
 * Creates a random, unique message id (UUID v4).
 *
 * @example
 * ```ts
 * import { Envelope } from "@switchyard/core"
 * const id = Envelope.makeId() // e.g. "3b241101-e2bb-4255-8caf-4136c566a962"
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const makeId = (): string => randomUuid()

/**
 * A short human readable description of where a delivery came from, for logs.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Envelope } from "@switchyard/core"
 * const logDelivery = (envelope: Envelope.Envelope) => Effect.log(`received ${Envelope.describe(envelope)}`)
 * ```
 * @category utils
 * @since 0.1.0
 */
export const describe = (envelope: Envelope): string =>
  `${envelope.coordinates.destination}#${envelope.id}` +
  (envelope.coordinates.partition !== undefined ? ` p${envelope.coordinates.partition}` : "") +
  (envelope.coordinates.offset !== undefined ? `@${envelope.coordinates.offset}` : "") +
  (envelope.coordinates.sequence !== undefined ? ` seq ${envelope.coordinates.sequence}` : "")

/**
 * Builds an outgoing message for the byte-level `Broker` (raw publishing, tests, bridges): a fresh id and
 * empty headers unless given, and the caller's `timestamp`. Without one it takes the time of the default
 * `Clock` (a synchronous constructor sees no `TestClock`: in Effect code, {@link outgoingNow} reads the
 * fiber's `Clock`).
 *
 * @example
 * ```ts
 * import { Clock, Effect } from "effect"
 * import { Envelope } from "@switchyard/core"
 * const message = Effect.map(Clock.currentTimeMillis, (timestamp) =>
 *   Envelope.outgoing(new TextEncoder().encode("hello"), { key: "greetings", contentType: "text/plain", timestamp })
 * )
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const outgoing = (payload: Uint8Array, fields: Partial<Omit<OutgoingMessage, "payload">> = {}): OutgoingMessage => ({
  id: fields.id ?? makeId(),
  key: fields.key,
  headers: fields.headers ?? {},
  timestamp: fields.timestamp ?? Clock.Clock.defaultValue().currentTimeMillisUnsafe(),
  contentType: fields.contentType ?? "application/octet-stream",
  payload,
  correlationId: fields.correlationId,
  causationId: fields.causationId
})

/**
 * {@link outgoing}, stamped (unless `timestamp` is given) with the current time of the fiber's `Clock`, so
 * that under `TestClock` the message is published at the test's time.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Broker, Envelope } from "@switchyard/core"
 * const publishHello = Effect.gen(function*() {
 *   const broker = yield* Broker.Broker
 *   const message = yield* Envelope.outgoingNow(new TextEncoder().encode("hello"), { key: "greetings" })
 *   return yield* broker.publish("greetings", [message])
 * })
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const outgoingNow = (
  payload: Uint8Array,
  fields: Partial<Omit<OutgoingMessage, "payload">> = {}
): Effect.Effect<OutgoingMessage> =>
  fields.timestamp === undefined
    ? Effect.map(Clock.currentTimeMillis, (timestamp) => outgoing(payload, { ...fields, timestamp }))
    : Effect.succeed(outgoing(payload, fields))
