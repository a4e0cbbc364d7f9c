/**
 * Envelope <-> NATS message headers. Internal: the hot path of both core NATS and JetStream.
 *
 * @internal
 */
import { headers as makeHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"
import type { Envelope } from "@switchyard/core"
import { Headers as H } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"

/** The JetStream de-duplication header. */
export const natsMsgId = "Nats-Msg-Id"

/** Switchyard's envelope header names as nats.js canonicalises them (`Match.CanonicalMIME`). */
const canonical = {
  messageId: "X-Switchyard-Id",
  key: "X-Switchyard-Key",
  correlationId: "X-Switchyard-Correlation-Id",
  causationId: "X-Switchyard-Causation-Id",
  timestamp: "X-Switchyard-Timestamp",
  contentType: "Content-Type"
} as const

const reserved = new Set<string>([
  H.messageId,
  H.key,
  H.correlationId,
  H.causationId,
  H.timestamp,
  H.contentType,
  natsMsgId,
  ...Object.values(canonical)
])

/**
 * NATS header values cannot hold CR or LF (a dead-letter reason often does). Such values, and values
 * that happen to start with the marker, travel base64 encoded behind the marker, so every value
 * round-trips exactly.
 */
const encodedMarker = "=?sy-b64?"
const needsEncoding = /[\r\n]/

export const encodeValue = (value: string): string =>
  needsEncoding.test(value) || value.startsWith(encodedMarker)
    ? encodedMarker + Buffer.from(value, "utf8").toString("base64")
    : value

export const decodeValue = (value: string): string =>
  value.startsWith(encodedMarker) ? Buffer.from(value.slice(encodedMarker.length), "base64").toString("utf8") : value

/** Builds the NATS headers of an outgoing message. */
export const toHeaders = (message: Envelope.OutgoingMessage): MsgHdrs => {
  const h = makeHeaders()
  for (const name in message.headers) {
    const value = message.headers[name]
    if (value !== undefined && !reserved.has(name)) h.append(name, encodeValue(value))
  }
  h.append(H.messageId, encodeValue(message.id))
  h.append(H.timestamp, String(message.timestamp))
  h.append(H.contentType, encodeValue(message.contentType))
  if (message.key !== undefined) h.append(H.key, encodeValue(message.key))
  if (message.correlationId !== undefined) h.append(H.correlationId, encodeValue(message.correlationId))
  if (message.causationId !== undefined) h.append(H.causationId, encodeValue(message.causationId))
  return h
}

const utf8Encoder = new TextEncoder()

/**
 * The size in bytes of the header block nats.js sends for a message (`NATS/1.0\r\n`, `name: value\r\n`
 * per value, a closing `\r\n`). For error paths only: it builds the headers again.
 */
export const headerBlockLength = (message: Envelope.OutgoingMessage): number => {
  let length = "NATS/1.0\r\n\r\n".length
  for (const [name, values] of toHeaders(message)) {
    for (const value of values) length += utf8Encoder.encode(`${name}: ${value}\r\n`).length
  }
  return length
}

/** Whether a message with its header block is over the server's `max_payload` (checked only on refusal). */
export const exceedsMaxPayload = (nc: NatsConnection, m: Envelope.OutgoingMessage): boolean => {
  const max = nc.info?.max_payload
  return max !== undefined && m.payload.length + headerBlockLength(m) > max
}

/** Shared by every envelope without user headers (frozen: envelopes are immutable). */
const noHeaders: Record<string, string> = Object.freeze({})

/**
 * A `Draft` being filled from the headers, plus what only NATS has: the `Nats-Msg-Id` (the id when the
 * message has no `x-switchyard-id`) and which fields came from Switchyard's exact (lowercase) header names,
 * which win over their MIME-canonical spellings (`Content-Type`, `X-Switchyard-Id`, as nats.js writes them
 * with `Match.CanonicalMIME` and other clients by habit) whatever the order.
 */
interface Reading {
  id: string | undefined
  brokerId: string | undefined
  key: string | undefined
  headers: Record<string, string>
  timestamp: string | undefined
  brokerTimestamp: number | undefined
  contentType: string | undefined
  payload: Uint8Array
  correlationId: string | undefined
  causationId: string | undefined
  attempt: number
  coordinates: Envelope.Coordinates
  natsId: string | undefined
  exact: number
}

const ID = 1
const KEY = 2
const TIMESTAMP = 4
const CONTENT_TYPE = 8
const CORRELATION = 16
const CAUSATION = 32

/** Files one header into the reading; a repeated name's last value wins, an exact name over a canonical one. */
const put = (e: Reading, name: string, raw: string): void => {
  switch (name) {
    case H.messageId:
      e.exact |= ID
      e.id = decodeValue(raw)
      return
    case H.key:
      e.exact |= KEY
      e.key = decodeValue(raw)
      return
    case H.timestamp:
      e.exact |= TIMESTAMP
      e.timestamp = raw
      return
    case H.contentType:
      e.exact |= CONTENT_TYPE
      e.contentType = decodeValue(raw)
      return
    case H.correlationId:
      e.exact |= CORRELATION
      e.correlationId = decodeValue(raw)
      return
    case H.causationId:
      e.exact |= CAUSATION
      e.causationId = decodeValue(raw)
      return
    case natsMsgId:
      e.natsId = decodeValue(raw)
      return
    case canonical.messageId:
      if ((e.exact & ID) === 0) e.id = decodeValue(raw)
      return
    case canonical.key:
      if ((e.exact & KEY) === 0) e.key = decodeValue(raw)
      return
    case canonical.timestamp:
      if ((e.exact & TIMESTAMP) === 0) e.timestamp = raw
      return
    case canonical.contentType:
      if ((e.exact & CONTENT_TYPE) === 0) e.contentType = decodeValue(raw)
      return
    case canonical.correlationId:
      if ((e.exact & CORRELATION) === 0) e.correlationId = decodeValue(raw)
      return
    case canonical.causationId:
      if ((e.exact & CAUSATION) === 0) e.causationId = decodeValue(raw)
      return
    default:
      if (e.headers === noHeaders) e.headers = {}
      e.headers[name] = decodeValue(raw)
  }
}

const blank = (
  payload: Uint8Array,
  attempt: number,
  coordinates: Envelope.Coordinates,
  brokerTimestamp: number | undefined
): Reading => ({
  id: undefined,
  brokerId: undefined,
  key: undefined,
  headers: noHeaders,
  timestamp: undefined,
  brokerTimestamp,
  contentType: undefined,
  payload,
  correlationId: undefined,
  causationId: undefined,
  attempt,
  coordinates,
  natsId: undefined,
  exact: 0
})

/**
 * Where a delivered message comes from, beyond its headers: the JetStream stream holding it (with
 * `coordinates.sequence`, the stable id of a message that carries none) and the server's stored time.
 * Core NATS has neither.
 */
export interface Origin {
  readonly stream: string | undefined
  readonly brokerTimestamp: number | undefined
}

/** Core NATS: no stored message, so no stable id and no stored time. */
export const coreOrigin: Origin = { stream: undefined, brokerTimestamp: undefined }

/** The id fallbacks NATS adds before the shared ones: `Nats-Msg-Id`, then `<stream>/<stream sequence>`. */
const complete = (e: Reading, origin: Origin, now: () => number): Envelope.Envelope => {
  if (e.id === undefined || e.id === "") {
    e.id = e.natsId
    const sequence = e.coordinates.sequence
    if ((e.id === undefined || e.id === "") && origin.stream !== undefined && sequence !== undefined) {
      e.brokerId = `${origin.stream}/${sequence}`
    }
  }
  return IncomingEnvelope.finish(e, now)
}

const utf8 = new TextDecoder()

/**
 * The raw header block of a message received by nats.js: `NATS/1.0\r\nName: value\r\n…\r\n\r\n`.
 * `"none"` when the message has no headers; `undefined` when this nats.js does not expose the block the way
 * 3.x does (then the public, slower `headers` API is used). Reading the block ourselves skips nats.js's
 * header object, which validates, canonicalises and searches every name again on every message; on the
 * consume path that was the single largest cost.
 */
export const headerBlock = (msg: object): Uint8Array | "none" | undefined => {
  // A JetStream message wraps the core message.
  const inner: unknown = Reflect.get(msg, "msg")
  const core = typeof inner === "object" && inner !== null ? inner : msg
  const arg: unknown = Reflect.get(core, "_msg")
  const data: unknown = Reflect.get(core, "_rdata")
  if (typeof arg !== "object" || arg === null || !(data instanceof Uint8Array)) return undefined
  const hdr: unknown = Reflect.get(arg, "hdr")
  if (typeof hdr !== "number" || hdr > data.length) return undefined
  return hdr > 0 ? data.subarray(0, hdr) : "none"
}

/**
 * Visits the headers of a block exactly as nats.js parses them (lines split on CRLF, the status line
 * skipped, the name before the first `:` kept as is, the value trimmed), in order. `visit` is a module
 * function taking its state as an argument, so a scan allocates no closure.
 */
const scanBlock = <T>(block: Uint8Array, state: T, visit: (state: T, name: string, raw: string) => void): void => {
  const text = utf8.decode(block)
  let start = text.indexOf("\r\n")
  while (start !== -1) {
    start += 2
    let end = text.indexOf("\r\n", start)
    if (end === -1) end = text.length
    if (end > start) {
      const colon = text.indexOf(":", start)
      if (colon !== -1 && colon < end) visit(state, text.slice(start, colon), text.slice(colon + 1, end).trim())
    }
    start = end < text.length ? end : -1
  }
}

interface Lookup {
  readonly name: string
  value: string | undefined
}

const matchHeader = (lookup: Lookup, name: string, raw: string): void => {
  if (name === lookup.name) lookup.value = raw
}

/** The last value of one header of a received message (decoded), or `undefined` when it has none. */
export const lastHeader = (
  msg: { readonly headers?: MsgHdrs | undefined },
  name: string
): string | undefined => {
  const block = headerBlock(msg)
  if (block === "none") return undefined
  if (block === undefined) {
    const h = msg.headers
    return h !== undefined && h.has(name) ? decodeValue(h.last(name)) : undefined
  }
  const lookup: Lookup = { name, value: undefined }
  scanBlock(block, lookup, matchHeader)
  return lookup.value === undefined ? undefined : decodeValue(lookup.value)
}

/**
 * Reads an envelope back from a delivered message, in one pass over its headers, through the adapter kit's
 * `IncomingEnvelope.finish` (so the id, timestamp and content-type fallbacks are those of every broker).
 * `now` is read only when neither the message nor the server has a usable time.
 */
export const fromMessage = (
  msg: { readonly data: Uint8Array; readonly headers?: MsgHdrs | undefined },
  attempt: number,
  coordinates: Envelope.Coordinates,
  origin: Origin,
  now: () => number
): Envelope.Envelope => {
  const block = headerBlock(msg)
  if (block === undefined) return fromHeaders(msg.data, msg.headers, attempt, coordinates, origin, now)
  const e = blank(msg.data, attempt, coordinates, origin.brokerTimestamp)
  if (block !== "none") scanBlock(block, e, put)
  return complete(e, origin, now)
}

/** Reads an envelope from a payload and nats.js headers (the public API only). */
export const fromHeaders = (
  data: Uint8Array,
  h: MsgHdrs | undefined,
  attempt: number,
  coordinates: Envelope.Coordinates,
  origin: Origin,
  now: () => number
): Envelope.Envelope => {
  const e = blank(data, attempt, coordinates, origin.brokerTimestamp)
  if (h !== undefined) {
    for (const [name, values] of h) {
      const raw = values[values.length - 1]
      if (raw !== undefined) put(e, name, raw)
    }
  }
  return complete(e, origin, now)
}

/** Turns any thrown value into a short, secret-free reason. */
export const reason = (cause: unknown): string =>
  cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

/**
 * JetStream names (streams, consumers) may not contain `.`, `*`, `>`, whitespace or path separators.
 * Replaces them; when anything was replaced, a short hash of the original keeps distinct names distinct.
 */
export const sanitizeName = (name: string): string => {
  const clean = name.replace(/[^A-Za-z0-9_-]/g, "_")
  if (clean === name && clean.length > 0) return clean
  let hash = 0x811c9dc5
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return `${clean}_${(hash >>> 0).toString(36)}`
}
