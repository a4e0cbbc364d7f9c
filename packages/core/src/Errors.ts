/**
 * Typed errors of Switchyard. Every failure travels in the error channel as one of these tagged classes,
 * so callers can `Effect.catchTag` them. Messages never contain secrets (credentials are `Redacted`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * What kind of failure a broker operation met: the `_tag` of its {@link Reason}, classified once at the
 * adapter's edge from the client's error codes (never from message text alone).
 *
 * | kind | retryable | typical source |
 * | --- | --- | --- |
 * | `Unreachable` | yes | ECONNREFUSED, DNS failure, connection lost |
 * | `Timeout` | yes | no answer within the configured time |
 * | `BrokerClosed` | yes | the broker or channel closed (shutdown, restart) |
 * | `AuthenticationFailed` | no | bad credentials (AMQP 403 on connect, SASL failure, NATS authorization violation) |
 * | `AuthorizationFailed` | no | permission denied on a destination (AMQP 403 access-refused, NATS permissions violation) |
 * | `TopologyConflict` | no | a declaration that contradicts an existing one (AMQP 406 PRECONDITION_FAILED) |
 * | `NotFound` | no | missing vhost, stream, topic, queue (AMQP 404 / 530) |
 * | `Unroutable` | no | the broker accepted nothing for the destination (AMQP `mandatory` return) |
 * | `TooLarge` | no | the message exceeds a broker limit (payload, header block, frame) |
 * | `Invalid` | no | the client refused to encode the message (bad field value, header table too big) |
 * | `Unknown` | yes | anything not classified (kept retryable: a transient fault must not drop work) |
 *
 * @example
 * ```ts
 * import { Errors } from "@switchyard/core"
 * const error = new Errors.PublishError({ destination: "orders", reason: Errors.reason("TooLarge", "message too large") })
 * console.log(error.isRetryable) // false
 * ```
 * @since 0.2.0
 */
export const ErrorKind = Schema.Literals([
  "Unreachable",
  "Timeout",
  "BrokerClosed",
  "AuthenticationFailed",
  "AuthorizationFailed",
  "TopologyConflict",
  "NotFound",
  "Unroutable",
  "TooLarge",
  "Invalid",
  "Unknown"
])

/**
 * See {@link ErrorKind}.
 *
 * @since 0.2.0
 */
export type ErrorKind = typeof ErrorKind.Type

const retryableKinds: ReadonlySet<ErrorKind> = new Set<ErrorKind>(["Unreachable", "Timeout", "BrokerClosed", "Unknown"])

/**
 * Whether an operation that failed with this kind may succeed when tried again.
 *
 * @example
 * ```ts
 * import { Errors } from "@switchyard/core"
 * Errors.isRetryableKind("Timeout") // true
 * Errors.isRetryableKind("AuthenticationFailed") // false
 * ```
 * @since 0.2.0
 */
export const isRetryableKind = (kind: ErrorKind | undefined): boolean => kind === undefined || retryableKinds.has(kind)

const reasonFields = {
  /** The broker's or client's own words (a RabbitMQ reply text, a NATS server error, a kafkajs message). */
  message: Schema.String,
  /** The client's error code, when it gave one (AMQP reply code, errno string, Kafka error code name). */
  code: Schema.optional(Schema.Union([Schema.String, Schema.Number]))
}

/**
 * The host cannot be reached or the connection was lost (ECONNREFUSED, DNS failure, reset). Retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class Unreachable extends Schema.TaggedClass<Unreachable>()("Unreachable", reasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * No answer within the configured time. Retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class Timeout extends Schema.TaggedClass<Timeout>()("Timeout", reasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * The broker, the connection or the channel closed (shutdown, restart, a channel closed under the delivery).
 * Retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class BrokerClosed extends Schema.TaggedClass<BrokerClosed>()("BrokerClosed", reasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * Bad credentials or a refused TLS handshake (AMQP 403 on connect, SASL failure, NATS authorization
 * violation). Not retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class AuthenticationFailed extends Schema.TaggedClass<AuthenticationFailed>()("AuthenticationFailed", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Permission denied on a destination (AMQP 403 access-refused, NATS permissions violation, Kafka ACLs). Not
 * retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class AuthorizationFailed extends Schema.TaggedClass<AuthorizationFailed>()("AuthorizationFailed", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A declaration that contradicts an existing one (AMQP 406 PRECONDITION_FAILED, a JetStream stream with other
 * settings). Not retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class TopologyConflict extends Schema.TaggedClass<TopologyConflict>()("TopologyConflict", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A missing virtual host, stream, topic or queue (AMQP 404 / 530). Not retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class NotFound extends Schema.TaggedClass<NotFound>()("NotFound", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The broker accepted nothing for the destination (AMQP `mandatory` return, no JetStream stream for the
 * subject). Not retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class Unroutable extends Schema.TaggedClass<Unroutable>()("Unroutable", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The message exceeds a broker limit (payload, header block, frame). Not retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class TooLarge extends Schema.TaggedClass<TooLarge>()("TooLarge", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The client refused to encode the message or the request (bad field value, header table too big). Not
 * retryable.
 *
 * @category reasons
 * @since 0.3.0
 */
export class Invalid extends Schema.TaggedClass<Invalid>()("Invalid", reasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Anything not classified. Kept retryable: a transient fault must not drop work.
 *
 * @category reasons
 * @since 0.3.0
 */
export class Unknown extends Schema.TaggedClass<Unknown>()("Unknown", reasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * Why a broker operation failed: the `reason` of {@link ConnectionError}, {@link PublishError},
 * {@link SubscribeError} and {@link AckError}, in the manner of effect's `SqlError`. Match on `_tag`;
 * `message` keeps the broker's own words and `code` the client's code.
 *
 * @example
 * ```ts
 * import { Errors } from "@switchyard/core"
 * const describe = (reason: Errors.Reason): string =>
 *   reason._tag === "TopologyConflict" ? `fix the declaration: ${reason.message}` : reason.message
 * ```
 * @category reasons
 * @since 0.3.0
 */
export type Reason =
  | Unreachable
  | Timeout
  | BrokerClosed
  | AuthenticationFailed
  | AuthorizationFailed
  | TopologyConflict
  | NotFound
  | Unroutable
  | TooLarge
  | Invalid
  | Unknown

/**
 * The schema of {@link Reason}.
 *
 * @category reasons
 * @since 0.3.0
 */
export const Reason = Schema.Union([
  Unreachable,
  Timeout,
  BrokerClosed,
  AuthenticationFailed,
  AuthorizationFailed,
  TopologyConflict,
  NotFound,
  Unroutable,
  TooLarge,
  Invalid,
  Unknown
])

const reasonClasses = {
  Unreachable,
  Timeout,
  BrokerClosed,
  AuthenticationFailed,
  AuthorizationFailed,
  TopologyConflict,
  NotFound,
  Unroutable,
  TooLarge,
  Invalid,
  Unknown
} satisfies { readonly [K in ErrorKind]: new(fields: { message: string; code?: string | number }) => Reason }

/**
 * Builds the {@link Reason} of a kind: what an adapter's error classifier returns.
 *
 * @example
 * ```ts
 * import { Errors } from "@switchyard/core"
 * const reason = Errors.reason("TopologyConflict", "PRECONDITION_FAILED - inequivalent arg 'durable'", 406)
 * const error = new Errors.SubscribeError({ destination: "orders", reason })
 * console.log(error.isRetryable) // false
 * ```
 * @category reasons
 * @since 0.3.0
 */
export const reason = (kind: ErrorKind, message: string, code?: string | number): Reason =>
  new reasonClasses[kind](code === undefined ? { message } : { message, code })

/**
 * A value could not be encoded for a destination. Raised before anything is sent to the broker.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Publisher } from "@switchyard/core"
 * declare const program: Effect.Effect<void, Publisher.PublishFailure, Publisher.Publisher>
 * program.pipe(Effect.catchTag("EncodeError", (e) => Effect.logError(e.message)))
 * ```
 * @since 0.1.0
 */
export class EncodeError extends Schema.TaggedError<EncodeError>()("EncodeError", {
  destination: Schema.String,
  message: Schema.String
}) {}

/**
 * A payload could not be decoded with the destination's codec. Delivered as a value on the
 * {@link Delivery} (never as a stream failure) so the consumer runtime can dead-letter it.
 *
 * @since 0.1.0
 */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  destination: Schema.String,
  message: Schema.String
}) {}

/**
 * The broker did not confirm a publish (negative ack, unroutable, timeout, connection lost).
 *
 * @since 0.1.0
 */
export class PublishError extends Schema.TaggedError<PublishError>()("PublishError", {
  destination: Schema.String,
  /** Why it failed, classified at the adapter's edge (see {@link Reason}). */
  reason: Reason,
  cause: Schema.optional(Schema.Defect())
}) {
  /** The reason's tag (see {@link ErrorKind}). */
  get kind(): ErrorKind {
    return this.reason._tag
  }

  /** Whether trying again may succeed (see {@link Reason}). */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  override get message(): string {
    return `publish to "${this.destination}" failed: ${this.reason.message}`
  }
}

/**
 * A subscription could not be opened or failed while running (connection lost beyond recovery,
 * missing destination, authorization).
 *
 * @since 0.1.0
 */
export class SubscribeError extends Schema.TaggedError<SubscribeError>()("SubscribeError", {
  destination: Schema.String,
  /** Why it failed, classified at the adapter's edge (see {@link Reason}). */
  reason: Reason,
  cause: Schema.optional(Schema.Defect())
}) {
  /** The reason's tag (see {@link ErrorKind}). */
  get kind(): ErrorKind {
    return this.reason._tag
  }

  /** Whether trying again may succeed (see {@link Reason}). */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  override get message(): string {
    return `subscription to "${this.destination}" failed: ${this.reason.message}`
  }
}

/**
 * Acknowledging (or negatively acknowledging) a delivery failed, e.g. because the channel that
 * delivered it is gone. The message will be redelivered by the broker: at-least-once still holds.
 *
 * @since 0.1.0
 */
export class AckError extends Schema.TaggedError<AckError>()("AckError", {
  destination: Schema.String,
  /** Why it failed, classified at the adapter's edge (see {@link Reason}). */
  reason: Reason,
  cause: Schema.optional(Schema.Defect())
}) {
  /** The reason's tag (see {@link ErrorKind}). */
  get kind(): ErrorKind {
    return this.reason._tag
  }

  /** Whether trying again may succeed (see {@link Reason}). */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  override get message(): string {
    return `ack on "${this.destination}" failed: ${this.reason.message}`
  }
}

/**
 * Connecting to a broker failed or timed out.
 *
 * @since 0.1.0
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>()("ConnectionError", {
  broker: Schema.String,
  /** Why it failed, classified at the adapter's edge (see {@link Reason}). */
  reason: Reason,
  cause: Schema.optional(Schema.Defect())
}) {
  /** The reason's tag (see {@link ErrorKind}). */
  get kind(): ErrorKind {
    return this.reason._tag
  }

  /** Whether trying again may succeed (see {@link Reason}). */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  override get message(): string {
    return `connection to ${this.broker} failed: ${this.reason.message}`
  }
}

/**
 * A handler did not finish within the consumer's `handlerTimeout`.
 *
 * @since 0.1.0
 */
export class HandlerTimeoutError extends Schema.TaggedError<HandlerTimeoutError>()("HandlerTimeoutError", {
  destination: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `handler for "${this.destination}" did not finish within ${this.timeoutMillis}ms`
  }
}

/**
 * A request-reply call got no answer in time.
 *
 * @since 0.1.0
 */
export class RequestTimeoutError extends Schema.TaggedError<RequestTimeoutError>()("RequestTimeoutError", {
  destination: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `no reply from "${this.destination}" within ${this.timeoutMillis}ms`
  }
}

/**
 * A request-reply call found nobody listening on the destination.
 *
 * @since 0.1.0
 */
export class NoRespondersError extends Schema.TaggedError<NoRespondersError>()("NoRespondersError", {
  destination: Schema.String
}) {
  override get message(): string {
    return `no responders for "${this.destination}"`
  }
}

/**
 * A request-reply responder failed (its handler failed or died, or it could not decode the request) and
 * answered with the reason instead of a reply. The requester gets it at once, not after its timeout. The
 * same contract on every broker with request-reply (AMQP `AmqpRpc`, NATS `NatsRpc`): the reply carries
 * the reason in the `x-switchyard-rpc-error` header.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Errors } from "@switchyard/core"
 * declare const call: Effect.Effect<Uint8Array, Errors.RemoteError>
 * call.pipe(Effect.catchTag("RemoteError", (e) => Effect.logError(e.reason)))
 * ```
 * @since 0.2.0
 */
export class RemoteError extends Schema.TaggedError<RemoteError>()("RemoteError", {
  destination: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `responder on "${this.destination}" failed: ${this.reason}`
  }
}
