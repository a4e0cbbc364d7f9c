/**
 * The one header mapping of both flavours (core NATS and JetStream): an `OutgoingMessage` becomes NATS
 * headers, and a delivered message becomes an `Envelope` through the kit's `IncomingEnvelope.finish`.
 *
 * Native first: the message id travels as `Nats-Msg-Id` (JetStream's de-duplication id); `x-switchyard-id`
 * is written only when the broker-level id differs from it (a redriven copy's `dedupId`). NATS has no
 * native key, timestamp or content type, so those travel as Switchyard's headers. Reading accepts
 * Switchyard's exact (lowercase) names, their MIME-canonical spellings (`X-Switchyard-Id`, `Content-Type`:
 * what nats.js writes with `Match.CanonicalMIME` and other clients by habit; the exact name wins), and
 * `Nats-Msg-Id`. nats.js's public API is read (`msg.headers`, `msg.info`, `msg.time`), except that a received
 * header block still undecoded is read from the bytes nats.js keeps (`headerBlock.ts`: the same result, cheaper).
 */
import { canonicalMIMEHeaderKey, type MsgHdrs, MsgHdrsImpl, type NatsConnection } from "@nats-io/transport-node"
import type { Envelope } from "@switchyard/core"
import { Headers as H } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"
import { Result } from "effect"
import * as HeaderBlock from "./headerBlock.ts"

/** The JetStream de-duplication header: the message id. */
export const natsMsgId = "Nats-Msg-Id"

type Field = "id" | "key" | "timestamp" | "contentType" | "correlationId" | "causationId"

/** Switchyard's envelope header names. */
const exactNames: Readonly<Record<string, Field>> = {
  [H.messageId]: "id",
  [H.key]: "key",
  [H.timestamp]: "timestamp",
  [H.contentType]: "contentType",
  [H.correlationId]: "correlationId",
  [H.causationId]: "causationId"
}

/** The same names as nats.js canonicalises them (`Match.CanonicalMIME`). */
const canonicalNames: Readonly<Record<string, Field>> = {
  "X-Switchyard-Id": "id",
  "X-Switchyard-Key": "key",
  "X-Switchyard-Timestamp": "timestamp",
  "Content-Type": "contentType",
  "X-Switchyard-Correlation-Id": "correlationId",
  "X-Switchyard-Causation-Id": "causationId"
}

const isReserved = (name: string): boolean =>
  name === natsMsgId || Object.hasOwn(exactNames, name) || Object.hasOwn(canonicalNames, name)

/**
 * NATS header values cannot hold CR or LF (a dead-letter reason often does), and nats.js trims the values
 * it receives. Such values (and values with leading or trailing whitespace, or that happen to start with the
 * marker) travel base64 encoded behind the marker, so every value round-trips exactly.
 */
const encodedMarker = "=?sy-b64?"
/** CR or LF anywhere, what `trim` would remove (`\s` is exactly its set), or the marker: one regex test. */
const needsEncoding = /[\r\n]|^\s|\s$|^=\?sy-b64\?/

/** A header value NATS can carry (see `encodedMarker`). */
export const encodeValue = (value: string): string =>
  needsEncoding.test(value) ? encodedMarker + Buffer.from(value, "utf8").toString("base64") : value

/** The value {@link encodeValue} encoded. */
export const decodeValue = (value: string): string =>
  value.startsWith(encodedMarker) ? Buffer.from(value.slice(encodedMarker.length), "base64").toString("utf8") : value

/**
 * Every header of an outgoing message, in order (the id as `Nats-Msg-Id`), each value through
 * {@link encodeValue} (no CR/LF, nothing to trim). A user's header name nats.js would refuse goes through
 * nats.js's own check, which throws its own error, as its `append` does.
 */
const eachHeaderOf = (message: Envelope.OutgoingMessage, put: (name: string, value: string) => void): void => {
  const user = message.headers
  for (const name in user) {
    const value = user[name]
    if (value === undefined || !Object.hasOwn(user, name) || isReserved(name)) continue
    if (!HeaderBlock.validName.test(name)) canonicalMIMEHeaderKey(name)
    put(name, encodeValue(value))
  }
  // A redriven copy keeps its envelope id but needs a broker-level id of its own, or JetStream's duplicate
  // window would swallow it.
  const brokerId = message.dedupId ?? message.id
  put(natsMsgId, encodeValue(brokerId))
  if (brokerId !== message.id) put(H.messageId, encodeValue(message.id))
  put(H.timestamp, String(message.timestamp))
  put(H.contentType, encodeValue(message.contentType))
  if (message.key !== undefined) put(H.key, encodeValue(message.key))
  if (message.correlationId !== undefined) put(H.correlationId, encodeValue(message.correlationId))
  if (message.causationId !== undefined) put(H.causationId, encodeValue(message.causationId))
}

/**
 * nats.js's headers, written to bytes with `Buffer.from` instead of its `TextEncoder` (the block is the same
 * text, and the same bytes: about 40 % of building and encoding a message's headers). nats.js's publish
 * only calls `encode` on what it is given; everything else is `MsgHdrsImpl`'s own.
 */
class Utf8Headers extends MsgHdrsImpl {
  override encode(): Uint8Array {
    return Buffer.from(this.toString(), "utf8")
  }
}

/**
 * The NATS headers of an outgoing message, as a header map (for reading them back; the publish paths use
 * {@link wireHeaders}). Built in one pass straight into the map, which skips the per-header work of
 * `append` (name canonicalisation, a key scan, a value regex and trim).
 */
export const toHeaders = (message: Envelope.OutgoingMessage): MsgHdrs => {
  const headers = new Utf8Headers()
  const record = headers.headers
  eachHeaderOf(message, (name, value) => record.set(name, [value]))
  return headers
}

/**
 * What the publish paths hand nats.js: headers whose `encode` (all its publish calls) writes the block
 * straight from the message, the text `MsgHdrsImpl.toString` would give, without filling a map first. If
 * something added headers to the map (JetStream's publish does for options the adapter does not pass),
 * the message's go in beside them and the map is encoded as before.
 */
class WireHeaders extends Utf8Headers {
  readonly #message: Envelope.OutgoingMessage
  readonly #text: string
  constructor(message: Envelope.OutgoingMessage) {
    super()
    this.#message = message
    // A bad user header name throws here, at construction, as `toHeaders` does.
    this.#text = blockText(message)
  }
  override encode(): Uint8Array {
    if (this.headers.size === 0) return Buffer.from(this.#text, "utf8")
    const record = this.headers
    eachHeaderOf(this.#message, (name, value) => {
      if (!record.has(name)) record.set(name, [value])
    })
    return super.encode()
  }
}

/** The header block's text: `NATS/1.0`, a line per header, a blank line (as `MsgHdrsImpl.toString` writes it). */
const blockText = (message: Envelope.OutgoingMessage): string => {
  let text = "NATS/1.0"
  eachHeaderOf(message, (name, value) => {
    text += `\r\n${name}: ${value}`
  })
  return `${text}\r\n\r\n`
}

/** The headers a publish path passes to nats.js for a message (see {@link WireHeaders}). */
export const wireHeaders = (message: Envelope.OutgoingMessage): MsgHdrs => new WireHeaders(message)

/** The size in bytes of the header block nats.js sends for a message (the block `wireHeaders` writes). */
const headerBlockLength = (message: Envelope.OutgoingMessage): number => Buffer.byteLength(blockText(message), "utf8")

/**
 * Whether a message with its header block is over the server's `max_payload` (checked only on refusal). A
 * message whose headers cannot be built (a name nats.js refuses) is not: it was refused for that.
 */
export const exceedsMaxPayload = (nc: NatsConnection, m: Envelope.OutgoingMessage): boolean => {
  const max = nc.info?.max_payload
  if (max === undefined) return false
  const length = Result.try(() => headerBlockLength(m))
  return Result.isSuccess(length) && m.payload.length + length.success > max
}

/**
 * Where a delivered message comes from, beyond its headers: its delivery count, coordinates, and on
 * JetStream the stream holding it (`<stream>/<sequence>` is the stable id of a message that carries none)
 * and the server's stored time.
 */
export interface Origin {
  readonly attempt: number
  readonly coordinates: Envelope.Coordinates
  readonly stream?: string | undefined
  readonly brokerTimestamp?: number | undefined
}

/** What the headers said, by precedence. */
interface Fields {
  readonly exact: Partial<Record<Field, string>>
  readonly canonical: Partial<Record<Field, string>>
  natsId: string | undefined
  readonly headers: Record<string, string>
}

const noFields = (): Fields => ({ exact: {}, canonical: {}, natsId: undefined, headers: {} })

/** What nats.js's decoded headers say (`msg.headers`). */
const readHeaders = (h: MsgHdrs | undefined): Fields => {
  const fields = noFields()
  if (h === undefined) return fields
  for (const [name, values] of h) {
    const raw = values[values.length - 1]
    if (raw !== undefined) file(fields, name, raw)
  }
  return fields
}

/**
 * What a received message's headers say, read from its header block when nats.js has it undecoded (see
 * `headerBlock.ts`), else from `msg.headers`. Filing line by line gives what filing the last value of each
 * name gives: a later line of a name overwrites, and a record keeps a key where it was first set.
 */
const fieldsOf = (msg: { readonly headers?: MsgHdrs | undefined }): Fields => {
  const block = HeaderBlock.rawBlock(msg)
  if (block === undefined) return readHeaders(msg.headers)
  const fields = noFields()
  return HeaderBlock.eachHeader(block, (name, value) => file(fields, name, value)) ? fields : readHeaders(msg.headers)
}

/** Files one header; a repeated name's last value wins. */
const file = (fields: Fields, name: string, raw: string): void => {
  // Own names only: `constructor` or `__proto__` read off a plain object would be its prototype's.
  const exact = Object.hasOwn(exactNames, name) ? exactNames[name] : undefined
  const canonical = Object.hasOwn(canonicalNames, name) ? canonicalNames[name] : undefined
  if (exact !== undefined) fields.exact[exact] = exact === "timestamp" ? raw : decodeValue(raw)
  else if (canonical !== undefined) fields.canonical[canonical] = canonical === "timestamp" ? raw : decodeValue(raw)
  else if (name === natsMsgId) fields.natsId = decodeValue(raw)
  else IncomingEnvelope.putHeader(fields.headers, name, decodeValue(raw))
}

const notBlank = (value: string | undefined): string | undefined =>
  value === undefined || value.trim() === "" ? undefined : value

const pick = (fields: Fields, field: Field): string | undefined => fields.exact[field] ?? fields.canonical[field]

/** The id a message carries: `x-switchyard-id` (either spelling), else `Nats-Msg-Id`; blank ones skipped. */
const ownId = (fields: Fields): string | undefined =>
  notBlank(fields.exact.id) ?? notBlank(fields.canonical.id) ?? notBlank(fields.natsId) ??
    fields.exact.id ?? fields.canonical.id

/** The `Draft` of a delivered message: what its headers and its origin say, before the kit's fallbacks. */
const draftOf = (data: Uint8Array, fields: Fields, origin: Origin): IncomingEnvelope.Draft => {
  const sequence = origin.coordinates.sequence
  return {
    id: ownId(fields),
    brokerId: origin.stream !== undefined && sequence !== undefined ? () => `${origin.stream}/${sequence}` : undefined,
    key: pick(fields, "key"),
    headers: fields.headers,
    timestamp: pick(fields, "timestamp"),
    brokerTimestamp: origin.brokerTimestamp,
    contentType: pick(fields, "contentType"),
    payload: data,
    correlationId: pick(fields, "correlationId"),
    causationId: pick(fields, "causationId"),
    attempt: origin.attempt,
    coordinates: origin.coordinates
  }
}

/**
 * The envelope of a delivered message. `now` (the Clock's time) is read only when neither the message nor
 * the server has a usable time.
 */
export const fromMessage = (
  msg: { readonly data: Uint8Array; readonly headers?: MsgHdrs | undefined },
  origin: Origin,
  now: () => number
): Envelope.Envelope => IncomingEnvelope.finish(draftOf(msg.data, fieldsOf(msg), origin), now)

/** The last value of one header of a received message (decoded), or `undefined` when it has none. */
export const lastHeader = (msg: { readonly headers?: MsgHdrs | undefined }, name: string): string | undefined => {
  const h = msg.headers
  return h !== undefined && h.has(name) ? decodeValue(h.last(name)) : undefined
}

/**
 * JetStream names (streams, consumers) may not contain `.`, `*`, `>`, whitespace or path separators.
 * Replaces them; when anything was replaced, a short hash of the original keeps distinct names distinct.
 */
export const sanitizeName = (name: string): string => {
  const clean = name.replace(/[^A-Za-z0-9_-]/g, "_")
  if (clean === name && clean.length > 0) return clean
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193)
  return `${clean}_${(hash >>> 0).toString(36)}`
}
