/**
 * Envelope <-> NATS message headers. Internal: the hot path of both core NATS and JetStream.
 *
 * @internal
 */
import { headers as makeHeaders, type MsgHdrs } from "@nats-io/transport-node"
import type { Envelope } from "@switchyard/core"
import { Headers as H } from "@switchyard/core"

/** The JetStream de-duplication header. */
export const natsMsgId = "Nats-Msg-Id"

const reserved = new Set<string>([
  H.messageId,
  H.key,
  H.correlationId,
  H.causationId,
  H.timestamp,
  H.contentType,
  natsMsgId
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

/** Shared by every envelope without user headers (frozen: envelopes are immutable). */
const noHeaders: Record<string, string> = Object.freeze({})

/** An envelope under construction. */
type Fields = { -readonly [K in Exclude<keyof Envelope.Envelope, "headers">]: Envelope.Envelope[K] } & {
  headers: Record<string, string>
}

/**
 * The last `Nats-Msg-Id` seen while one envelope is read (reading is synchronous, so one slot serves all):
 * the id only when the message has no `x-switchyard-id`.
 */
let natsIdSeen = ""

/** Files one header into the envelope under construction; a repeated name's last value wins. */
const put = (e: Fields, name: string, raw: string): void => {
  const value = decodeValue(raw)
  switch (name) {
    case H.messageId:
      e.id = value
      break
    case natsMsgId:
      natsIdSeen = value
      break
    case H.key:
      e.key = value
      break
    case H.timestamp:
      e.timestamp = Number(value)
      break
    case H.contentType:
      e.contentType = value
      break
    case H.correlationId:
      e.correlationId = value
      break
    case H.causationId:
      e.causationId = value
      break
    default:
      if (e.headers === noHeaders) e.headers = {}
      e.headers[name] = value
  }
}

const blank = (payload: Uint8Array, attempt: number, coordinates: Envelope.Coordinates): Fields => {
  natsIdSeen = ""
  return {
    id: "",
    key: undefined,
    headers: noHeaders,
    timestamp: 0,
    contentType: "application/octet-stream",
    payload,
    correlationId: undefined,
    causationId: undefined,
    attempt,
    coordinates
  }
}

const finish = (e: Fields): Envelope.Envelope => {
  if (e.id === "") e.id = natsIdSeen
  return e
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

/** Reads an envelope back from a delivered message, in one pass over its headers. */
export const fromMessage = (
  msg: { readonly data: Uint8Array; readonly headers?: MsgHdrs | undefined },
  attempt: number,
  coordinates: Envelope.Coordinates
): Envelope.Envelope => {
  const block = headerBlock(msg)
  if (block === undefined) return fromHeaders(msg.data, msg.headers, attempt, coordinates)
  const e = blank(msg.data, attempt, coordinates)
  if (block !== "none") scanBlock(block, e, put)
  return finish(e)
}

/** Reads an envelope from a payload and nats.js headers (the public API only). */
export const fromHeaders = (
  data: Uint8Array,
  h: MsgHdrs | undefined,
  attempt: number,
  coordinates: Envelope.Coordinates
): Envelope.Envelope => {
  const e = blank(data, attempt, coordinates)
  if (h !== undefined) {
    for (const [name, values] of h) {
      const raw = values[values.length - 1]
      if (raw !== undefined) put(e, name, raw)
    }
  }
  return finish(e)
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
