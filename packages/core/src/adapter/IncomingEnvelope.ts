/**
 * The one place where a delivered message becomes an `Envelope`. Every adapter extracts what its client
 * gives (headers, native properties, coordinates) into a {@link Draft} and calls {@link finish}, so the same
 * fallbacks hold on every broker for messages that Switchyard did not write:
 *
 * - **id**: the message's own id when it is usable text (not blank, at most 255 characters); else a stable
 *   id the adapter derives from broker coordinates (`brokerId`: the same on every redelivery, e.g. Kafka
 *   `topic/partition/offset`, JetStream `stream/sequence`); else a fresh UUID marked `idSource: "generated"`,
 *   which idempotency never counts as a duplicate. Never the empty string.
 * - **timestamp**: the message's own timestamp when it is a plausible epoch-millisecond number; else the
 *   broker's stored time (`brokerTimestamp`); else the time of receipt. Always finite.
 * - **contentType**: the message's when non-empty; else `application/octet-stream`.
 * - **correlationId / causationId**: `undefined` rather than empty strings.
 * - **attempt**: a positive integer (1 when the broker does not count).
 *
 * @since 0.2.0
 */
import type { Coordinates, Envelope, IdSource } from "../Envelope.ts"
import type { Headers } from "../Headers.ts"
import { randomUuid } from "../internal/uuid.ts"

/**
 * What an adapter read from its client, before the fallbacks. Fields it could not read are `undefined`.
 *
 * @since 0.2.0
 */
export interface Draft {
  /** The id the message carries (native message id or the `x-switchyard-id` header). */
  readonly id: string | undefined
  /**
   * A stable id from broker coordinates, when the broker has one that survives redelivery. A function is
   * called only when the message has no usable id of its own (most messages have one: no string built for them).
   */
  readonly brokerId?: string | (() => string | undefined) | undefined
  readonly key: string | undefined
  readonly keyBytes?: Uint8Array | undefined
  readonly headers: Headers
  /** The timestamp the message carries, as read (a number or the header's text); validated here. */
  readonly timestamp: number | string | undefined
  /** The broker's own stored time for the message (epoch ms), when it has one. */
  readonly brokerTimestamp?: number | undefined
  readonly contentType: string | undefined
  readonly payload: Uint8Array
  readonly correlationId: string | undefined
  readonly causationId: string | undefined
  readonly attempt: number | undefined
  readonly coordinates: Coordinates
}

/** Epoch milliseconds accepted as a publish time: after 1970-01-01 and before the year 2286. */
const maxPlausibleMillis = 10_000_000_000_000

/**
 * Whether a number read from metadata is a usable epoch-millisecond timestamp.
 *
 * @example
 * ```ts
 * import { IncomingEnvelope } from "@switchyard/core/adapter"
 * IncomingEnvelope.isPlausibleTimestamp(Date.now()) // true
 * IncomingEnvelope.isPlausibleTimestamp(Number.NaN) // false
 * ```
 * @since 0.2.0
 */
export const isPlausibleTimestamp = (value: number): boolean =>
  Number.isFinite(value) && value > 0 && value < maxPlausibleMillis

const timestampOf = (value: number | string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const n = typeof value === "number" ? value : value.trim() === "" ? Number.NaN : Number(value)
  return isPlausibleTimestamp(n) ? n : undefined
}

const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value === "" ? undefined : value

/**
 * The longest message id taken as the message's own (AMQP's `message-id` limit, the smallest of the brokers).
 *
 * @since 0.2.0
 */
export const maxIdLength = 255

/**
 * A message's own id is usable for deduplication only when it is real text: blank ids (`" "`) and ids longer
 * than {@link maxIdLength} come from foreign producers' garbage, are shared by unrelated messages, and would
 * make idempotency drop them as duplicates; the broker id is used instead.
 */
// Blank: no character that is not whitespace (a search that stops at the first one, no trimmed copy).
const nonBlank = /\S/

const usableId = (value: string | undefined): string | undefined =>
  value === undefined || value.length > maxIdLength || !isNonBlank(value) ? undefined : value

// Ids nearly always start with a printable ASCII character (a UUID, a number): answered without the regex,
// which costs more than the rest of the envelope's fallbacks.
const isNonBlank = (value: string): boolean => {
  const first = value.charCodeAt(0)
  return (first > 32 && first < 127) || nonBlank.test(value)
}

/**
 * Applies the fallbacks and returns the envelope. `now` is read only when neither the message nor the
 * broker has a usable time; pass the Clock's time (`clock.currentTimeMillisUnsafe`).
 *
 * @example
 * ```ts
 * import { IncomingEnvelope } from "@switchyard/core/adapter"
 * const envelope = IncomingEnvelope.finish({
 *   id: undefined,
 *   brokerId: "orders/0/42",
 *   key: undefined,
 *   headers: {},
 *   timestamp: "not a number",
 *   brokerTimestamp: 1_700_000_000_000,
 *   contentType: undefined,
 *   payload: new Uint8Array(),
 *   correlationId: "",
 *   causationId: undefined,
 *   attempt: undefined,
 *   coordinates: { destination: "orders", partition: 0, offset: "42" }
 * }, () => Date.now())
 * // envelope.id === "orders/0/42", envelope.idSource === "broker", envelope.timestamp === 1_700_000_000_000
 * ```
 * @since 0.2.0
 */
export const finish = (draft: Draft, now: () => number): Envelope => {
  const ownId = usableId(draft.id)
  const brokerId = ownId !== undefined ? undefined : nonEmpty(typeof draft.brokerId === "function" ? draft.brokerId() : draft.brokerId)
  const id = ownId ?? brokerId ?? randomUuid()
  const idSource: IdSource = ownId !== undefined ? "message" : brokerId !== undefined ? "broker" : "generated"
  const timestamp = timestampOf(draft.timestamp) ?? timestampOf(draft.brokerTimestamp) ?? now()
  const attempt = draft.attempt !== undefined && Number.isInteger(draft.attempt) && draft.attempt >= 1 ? draft.attempt : 1
  return {
    id,
    idSource,
    key: draft.key,
    keyBytes: draft.keyBytes,
    headers: draft.headers,
    timestamp,
    contentType: nonEmpty(draft.contentType) ?? "application/octet-stream",
    payload: draft.payload,
    correlationId: nonEmpty(draft.correlationId),
    causationId: nonEmpty(draft.causationId),
    attempt,
    coordinates: draft.coordinates
  }
}

/**
 * Whether an envelope's id may be used to recognise a redelivery or a duplicate publish: `false` for ids
 * made up per delivery (see `Envelope.idSource`) and for empty ids written by adapters that predate it.
 *
 * @example
 * ```ts
 * import { IncomingEnvelope } from "@switchyard/core/adapter"
 * import type { Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * const mayDeduplicate = IncomingEnvelope.hasStableId(envelope)
 * ```
 * @since 0.2.0
 */
export const hasStableId = (envelope: Envelope): boolean => envelope.id !== "" && envelope.idSource !== "generated"

/**
 * Sets one header in the header record of a delivered message. A header named `__proto__` is defined, not
 * assigned (an assignment would set the record's prototype and the header would be lost), so every name a
 * foreign producer sends stays a header. A repeated name: the last value set wins.
 *
 * @example
 * ```ts
 * import { IncomingEnvelope } from "@switchyard/core/adapter"
 * const headers: Record<string, string> = {}
 * IncomingEnvelope.putHeader(headers, "__proto__", "x")
 * Object.keys(headers) // ["__proto__"]
 * ```
 * @since 0.4.0
 */
export const putHeader = <V>(headers: Record<string, V>, name: string, value: V): void => {
  if (name === "__proto__") Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
  else headers[name] = value
}
