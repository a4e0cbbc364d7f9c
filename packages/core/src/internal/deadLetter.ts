/**
 * What the Consumer sends to a dead-letter destination, and the reduced forms it falls back to when the
 * broker refuses a dead letter for good (docs/architecture.md, "Dead letters the broker refuses").
 *
 * Everything Switchyard adds is bounded and printable on every broker: one line (no CR/LF or other control
 * characters, which a NATS header block cannot carry), well-formed UTF-16, at most about 1 KiB per value,
 * and an id short enough for AMQP's 255-byte `message-id`.
 */
import { Result } from "effect"
import type { Envelope, OutgoingMessage } from "../Envelope.ts"
import { makeId } from "../Envelope.ts"
import * as H from "../Headers.ts"
import { keyHash } from "./hash.ts"

/** Why a delivery is dead-lettered. */
export interface Failure {
  readonly reason: string
  readonly errorTag: string
  readonly attempts: number
}

/**
 * The forms of a dead letter, tried in this order while the broker refuses them with a non-retryable error:
 * `"full"` (original payload, key and headers plus the dead-letter headers), `"headers-omitted"` (only the
 * dead-letter headers, the reason cut shorter), `"payload-omitted"` (also an empty payload; headers give its
 * size, and the origin headers where it still sits).
 */
export type Form = "full" | "headers-omitted" | "payload-omitted"

/** The forms in the order they are tried. */
export const forms: readonly [Form, ...Array<Form>] = ["full", "headers-omitted", "payload-omitted"]

/** Longest reason in a full dead letter, in characters (a marker says how much was cut). */
export const maxReasonLength = 1024
/** Longest reason in a reduced dead letter. */
const reducedReasonLength = 256
const maxValueLength = 1024
/** Dead-letter ids stay below AMQP's 255-byte short string, whatever the original id. */
const maxIdBytes = 200

const controlCharacters = /[\u0000-\u001F\u007F]+/g
const loneSurrogates = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const utf8 = new TextEncoder()

/**
 * A header value every broker accepts: one line of well-formed text, cut to `max` characters with a marker
 * saying how many were left out.
 */
export const headerValue = (value: string, max: number): string => {
  const line = value.replace(controlCharacters, " ")
  const bounded = line.length <= max ? line : `${line.slice(0, max)}… [${line.length - max} more characters]`
  return bounded.replace(loneSurrogates, "\uFFFD")
}

/** The `_tag` of an error value, or its class name. */
export const errorTagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : error instanceof Error
    ? error.name
    : "UnknownError"

/** A readable reason for any error value; total: never throws, never `undefined`. */
export const reasonOf = (error: unknown): string => {
  if (error instanceof Error) return error.message || error.name
  if (typeof error === "string") return error
  // `JSON.stringify` throws on cycles and BigInt, and returns `undefined` for `undefined`, functions, symbols;
  // `String` throws for an object without a prototype, or whose `toString` throws.
  const json = Result.getOrUndefined(Result.try((): string | undefined => JSON.stringify(error)))
  if (json !== undefined) return json
  return Result.getOrElse(Result.try(() => String(error)), () => "unprintable error value")
}

const hex = (n: number): string => n.toString(16).padStart(8, "0")

/**
 * `<id>.dlq.<group>`: the same for every dead letter of one message by one group, so brokers that deduplicate
 * by id (JetStream) keep one. An over-long one becomes a prefix plus a 64-bit hash of the whole (still stable).
 * An empty id (adapters that predate `IncomingEnvelope`) gets a fresh one, never a shared `.dlq.<group>`.
 */
export const deadLetterId = (envelope: Envelope, group: string): string => {
  const id = `${envelope.id === "" ? makeId() : envelope.id}.dlq.${group}`
  if (id.length <= maxIdBytes && utf8.encode(id).length <= maxIdBytes) return id
  return `${id.slice(0, 40).replace(loneSurrogates, "\uFFFD")}~${hex(keyHash(id))}${hex(keyHash(id, 0x050c5d1f))}`
}

const envelopeHeaders: ReadonlySet<string> = new Set([
  H.messageId,
  H.key,
  H.timestamp,
  H.correlationId,
  H.causationId,
  H.contentType
])
const deadLetterPrefix = "x-switchyard-dlq-"

/** The original headers a dead letter copies: not the ones its own fields carry, nor a producer's dead-letter headers. */
const copiedHeaders = (headers: H.Headers): Record<string, string> => {
  const copied: Record<string, string> = {}
  for (const name in headers) {
    const lower = name.toLowerCase()
    if (envelopeHeaders.has(lower) || lower.startsWith(deadLetterPrefix)) continue
    copied[name] = headers[name]!
  }
  return copied
}

const deadLetterHeaders = (
  envelope: Envelope,
  group: string,
  failure: Failure,
  now: number,
  reasonLength: number
): Record<string, string> => ({
  [H.deadLetterReason]: headerValue(failure.reason, reasonLength),
  [H.deadLetterOriginalId]: headerValue(envelope.id, maxValueLength),
  [H.deadLetterErrorTag]: headerValue(failure.errorTag, maxValueLength),
  [H.deadLetterAttempts]: String(failure.attempts),
  [H.deadLetterOriginDestination]: headerValue(envelope.coordinates.destination, maxValueLength),
  [H.deadLetterOriginGroup]: headerValue(group, maxValueLength),
  [H.deadLetterOriginCoordinates]: headerValue(JSON.stringify(envelope.coordinates), maxValueLength),
  [H.deadLetterAt]: String(now)
})

/** An optional id-like field kept in a reduced dead letter only when it is short. */
const shortOrUndefined = (value: string | undefined): string | undefined =>
  value === undefined || utf8.encode(value).length > maxIdBytes ? undefined : value

/**
 * The dead letter of a delivery in one of the {@link Form}s.
 */
export const message = (envelope: Envelope, group: string, failure: Failure, now: number, form: Form): OutgoingMessage => {
  const timestamp = Number.isFinite(envelope.timestamp) ? envelope.timestamp : now
  const id = deadLetterId(envelope, group)
  if (form === "full") {
    return {
      id,
      key: envelope.key,
      keyBytes: envelope.keyBytes,
      timestamp,
      contentType: envelope.contentType,
      payload: envelope.payload,
      correlationId: envelope.correlationId,
      causationId: envelope.causationId,
      headers: { ...copiedHeaders(envelope.headers), ...deadLetterHeaders(envelope, group, failure, now, maxReasonLength) }
    }
  }
  const headers: Record<string, string> = {
    ...deadLetterHeaders(envelope, group, failure, now, reducedReasonLength),
    [H.deadLetterHeadersOmitted]: String(Object.keys(copiedHeaders(envelope.headers)).length)
  }
  const payloadOmitted = form === "payload-omitted"
  if (payloadOmitted) {
    headers[H.deadLetterPayloadOmitted] = "true"
    headers[H.deadLetterPayloadBytes] = String(envelope.payload.length)
  }
  return {
    id,
    key: envelope.key,
    keyBytes: envelope.keyBytes,
    timestamp,
    contentType: headerValue(envelope.contentType, 200),
    payload: payloadOmitted ? new Uint8Array(0) : envelope.payload,
    correlationId: shortOrUndefined(envelope.correlationId),
    causationId: shortOrUndefined(envelope.causationId),
    headers
  }
}
