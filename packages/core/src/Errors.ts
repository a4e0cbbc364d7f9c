/**
 * Typed errors of Switchyard. Every failure travels in the error channel as one of these tagged classes,
 * so callers can `Effect.catchTag` them. Messages never contain secrets (credentials are `Redacted`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

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
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `publish to "${this.destination}" failed: ${this.reason}`
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
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `subscription to "${this.destination}" failed: ${this.reason}`
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
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `ack on "${this.destination}" failed: ${this.reason}`
  }
}

/**
 * Connecting to a broker failed or timed out.
 *
 * @since 0.1.0
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>()("ConnectionError", {
  broker: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `connection to ${this.broker} failed: ${this.reason}`
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
