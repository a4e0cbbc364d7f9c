/**
 * Envelope <-> stream entry mapping. An entry is a flat list of field/value pairs; Switchyard writes:
 *
 * | field | value |
 * | --- | --- |
 * | `payload` | the payload bytes, exactly (binary-safe) |
 * | `x-switchyard-id` | the message id |
 * | `x-switchyard-key` | the key: its exact bytes when it has them (`keyBytes`), else its text |
 * | `x-switchyard-timestamp` | epoch milliseconds |
 * | `content-type`, `x-switchyard-correlation-id`, `x-switchyard-causation-id` | when set |
 * | any other field | a header of that name |
 *
 * Entries are read with node-redis `Buffer` replies, so a payload is never decoded as text. A foreign entry
 * may lack any of these: without `payload` its payload is empty (the codec then refuses it, and the consumer
 * dead-letters it with the reason), its other fields become headers; a field that repeats keeps its first
 * value. The fallbacks for id, timestamp and content type are the kit's (`IncomingEnvelope.finish`): the
 * broker id is `<stream>/<entry id>`, the broker time the entry id's milliseconds.
 */
import { Headers } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"
import { isUtf8 } from "node:buffer"

/** The field that carries the payload bytes. */
export const payloadField = "payload"

/** What XADD is sent for one message (after the `XADD key [trim] *`). */
export type Fields = ReadonlyArray<string | Buffer>

const defaultContentType = "application/octet-stream"

const bytes = (data: Uint8Array): Buffer => Buffer.from(data.buffer, data.byteOffset, data.byteLength)

/** The reserved field names: never written as headers. */
const reserved: ReadonlySet<string> = new Set([
  payloadField,
  Headers.messageId,
  Headers.key,
  Headers.timestamp,
  Headers.contentType,
  Headers.correlationId,
  Headers.causationId
])

/** The fields of an outgoing message. A header with a reserved name is not written (its field is Switchyard's). */
export const toFields = (message: Envelope.OutgoingMessage): Fields => {
  const out: Array<string | Buffer> = [payloadField, bytes(message.payload), Headers.messageId, message.id]
  if (message.keyBytes !== undefined) out.push(Headers.key, bytes(message.keyBytes))
  else if (message.key !== undefined) out.push(Headers.key, message.key)
  out.push(Headers.timestamp, String(message.timestamp))
  if (message.contentType !== defaultContentType) out.push(Headers.contentType, message.contentType)
  if (message.correlationId !== undefined) out.push(Headers.correlationId, message.correlationId)
  if (message.causationId !== undefined) out.push(Headers.causationId, message.causationId)
  for (const name in message.headers) {
    if (!reserved.has(name)) out.push(name, message.headers[name]!)
  }
  return out
}

/** A raw entry as read: its id and its field/value pairs (`undefined` when the entry was deleted, e.g. trimmed). */
export interface RawEntry {
  readonly id: string
  readonly fields: ReadonlyArray<Buffer> | undefined
}

/** The milliseconds part of an entry id (`1700000000000-3` → 1700000000000). */
export const entryMillis = (id: string): number | undefined => {
  const ms = Number(id.split("-", 1)[0])
  return Number.isFinite(ms) ? ms : undefined
}

/** The stable id of an entry without one of its own. */
export const brokerId = (destination: string, entryId: string): string => `${destination}/${entryId}`

const keyOf = (raw: Buffer | undefined): { readonly key: string | undefined; readonly keyBytes: Uint8Array | undefined } => {
  if (raw === undefined) return { key: undefined, keyBytes: undefined }
  if (isUtf8(raw)) return { key: raw.toString("utf8"), keyBytes: undefined }
  return { key: raw.toString("utf8"), keyBytes: Uint8Array.from(raw) }
}

/** A delivered entry as an envelope (through `IncomingEnvelope.finish`). */
export const fromEntry = (
  destination: string,
  entryId: string,
  fields: ReadonlyArray<Buffer>,
  attempt: number,
  now: () => number
): Envelope.Envelope => {
  const seen = new Map<string, Buffer>()
  const headers: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString("utf8")
    if (seen.has(name)) continue
    const value = fields[i + 1]!
    seen.set(name, value)
    if (!reserved.has(name)) IncomingEnvelope.putHeader(headers, name, value.toString("utf8"))
  }
  const text = (name: string) => seen.get(name)?.toString("utf8")
  const payload = seen.get(payloadField)
  const { key, keyBytes } = keyOf(seen.get(Headers.key))
  return IncomingEnvelope.finish({
    id: text(Headers.messageId),
    brokerId: brokerId(destination, entryId),
    key: key === "" ? undefined : key,
    keyBytes,
    headers,
    timestamp: text(Headers.timestamp),
    brokerTimestamp: entryMillis(entryId),
    contentType: text(Headers.contentType),
    payload: payload === undefined ? new Uint8Array(0) : Uint8Array.from(payload),
    correlationId: text(Headers.correlationId),
    causationId: text(Headers.causationId),
    attempt,
    coordinates: { destination, offset: entryId }
  }, now)
}
