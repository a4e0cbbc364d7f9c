/**
 * Envelope <-> NATS message headers. Internal: the hot path of both core NATS and JetStream.
 *
 * @internal
 */
import { headers as makeHeaders, type MsgHdrs } from "@nats-io/transport-node"
import type { Envelope, Headers } from "@switchyard/core"
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

/** Shared by every envelope without user headers (envelopes are immutable). */
const noHeaders: Headers.Headers = Object.freeze({})

/** Reads an envelope back from a delivered message, in one pass over the headers. */
export const fromMessage = (
  data: Uint8Array,
  h: MsgHdrs | undefined,
  attempt: number,
  coordinates: Envelope.Coordinates
): Envelope.Envelope => {
  let id = ""
  let natsId = ""
  let key: string | undefined
  let timestamp = 0
  let contentType = "application/octet-stream"
  let correlationId: string | undefined
  let causationId: string | undefined
  let user: Record<string, string> | undefined
  if (h !== undefined) {
    for (const [name, values] of h) {
      const raw = values[values.length - 1]
      if (raw === undefined) continue
      const value = decodeValue(raw)
      switch (name) {
        case H.messageId:
          id = value
          break
        case natsMsgId:
          natsId = value
          break
        case H.key:
          key = value
          break
        case H.timestamp:
          timestamp = Number(value)
          break
        case H.contentType:
          contentType = value
          break
        case H.correlationId:
          correlationId = value
          break
        case H.causationId:
          causationId = value
          break
        default:
          if (user === undefined) user = {}
          user[name] = value
      }
    }
  }
  return {
    id: id === "" ? natsId : id,
    key,
    headers: user === undefined ? noHeaders : user as Headers.Headers,
    timestamp,
    contentType,
    payload: data,
    correlationId,
    causationId,
    attempt,
    coordinates
  }
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
