/**
 * Header names Switchyard writes and reads. They are plain strings so that any broker (and any
 * non-Switchyard client) can read them.
 *
 * @since 0.1.0
 */

/** Header map carried by every message. @category models @since 0.1.0 */
export type Headers = Readonly<Record<string, string>>

/** W3C trace context header. @category header names @since 0.1.0 */
export const traceparent = "traceparent"
/** W3C trace state header. @category header names @since 0.1.0 */
export const tracestate = "tracestate"
/** The message id, for brokers without a native id field. @category header names @since 0.1.0 */
export const messageId = "x-switchyard-id"
/** The message key, for brokers without a native key field. @category header names @since 0.1.0 */
export const key = "x-switchyard-key"
/** Correlation id (request-reply, causality chains). @category header names @since 0.1.0 */
export const correlationId = "x-switchyard-correlation-id"
/** Causation id: the id of the message that caused this one. @category header names @since 0.1.0 */
export const causationId = "x-switchyard-causation-id"
/** Publish timestamp in epoch milliseconds. @category header names @since 0.1.0 */
export const timestamp = "x-switchyard-timestamp"
/** Content type of the payload (codec). @category header names @since 0.1.0 */
export const contentType = "content-type"

/** Why a message was dead-lettered (human readable). @category header names @since 0.1.0 */
export const deadLetterReason = "x-switchyard-dlq-reason"
/** The `_tag` of the error that dead-lettered the message. @category header names @since 0.1.0 */
export const deadLetterErrorTag = "x-switchyard-dlq-error-tag"
/** How many attempts were made before dead-lettering. @category header names @since 0.1.0 */
export const deadLetterAttempts = "x-switchyard-dlq-attempts"
/** The id of the dead-lettered message (the dead letter has an id of its own per group). @category header names @since 0.1.0 */
export const deadLetterOriginalId = "x-switchyard-dlq-original-id"
/** The destination the message was consumed from. @category header names @since 0.1.0 */
export const deadLetterOriginDestination = "x-switchyard-dlq-origin-destination"
/** The consumer group that dead-lettered the message. @category header names @since 0.1.0 */
export const deadLetterOriginGroup = "x-switchyard-dlq-origin-group"
/** The original broker coordinates, JSON encoded. @category header names @since 0.1.0 */
export const deadLetterOriginCoordinates = "x-switchyard-dlq-origin-coordinates"
/** When the message was dead-lettered, epoch milliseconds. @category header names @since 0.1.0 */
export const deadLetterAt = "x-switchyard-dlq-at"
/**
 * Set to `"true"` on a dead letter sent without the original payload, because the broker refused the dead
 * letter as too large or invalid even without the original headers (see docs/architecture.md, "Dead letters
 * the broker refuses"). The origin headers still say where the message sits.
 *
 * @category header names
 * @since 0.2.0
 */
export const deadLetterPayloadOmitted = "x-switchyard-dlq-payload-omitted"
/** Size in bytes of the original payload of a dead letter sent without it. @category header names @since 0.2.0 */
export const deadLetterPayloadBytes = "x-switchyard-dlq-payload-bytes"
/**
 * How many of the original message's headers a reduced dead letter left out (only Switchyard's
 * dead-letter headers are kept in that form).
 *
 * @category header names
 * @since 0.2.0
 */
export const deadLetterHeadersOmitted = "x-switchyard-dlq-headers-omitted"

/**
 * On a redriven copy: the consumer group it is meant for (the one that dead-lettered it). Consumers of other
 * groups acknowledge it without running their handler; the named group runs it even though its idempotency
 * ledger recorded the id as done (it was dead-lettered there). @since 0.2.0
 *
 * @category header names
 */
export const redriveGroup = "x-switchyard-redrive-group"
/** On a redriven copy: when it was redriven, epoch milliseconds. @category header names @since 0.2.0 */
export const redrivenAt = "x-switchyard-redriven-at"
