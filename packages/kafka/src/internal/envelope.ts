/**
 * Envelope <-> Kafka record mapping, native fields first: the key is the record key, the timestamp the record
 * timestamp; only what Kafka has no field for travels as headers (names from core's `Headers`): the id, the
 * correlation and causation ids when set, and the content type unless it is the default
 * (`application/octet-stream`, which a record without one gets back anyway). Delivered records become
 * envelopes through the adapter kit's `IncomingEnvelope.finish`, so the fallbacks are those of every broker.
 *
 * Keys are bytes in Kafka. A key that is UTF-8 text is exposed as `key`; any other key (e.g. 8 big-endian
 * bytes from Java's `LongSerializer`) keeps its exact bytes in `keyBytes` (with a lossy text form in `key`),
 * and `keyBytes` wins on publish, so dead letters and republishes keep the key and its partition.
 */
import { Headers } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"
import type { IHeaders, Message } from "kafkajs"
import { isUtf8 } from "node:buffer"

// keeps a leading BOM, so valid UTF-8 decodes to text that encodes back to the same bytes
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true })

/** The record key of a message: its exact bytes when it has them, else its text, else none. */
export const recordKey = (message: Envelope.OutgoingMessage): Buffer | string | null =>
  message.keyBytes !== undefined
    ? Buffer.from(message.keyBytes.buffer, message.keyBytes.byteOffset, message.keyBytes.byteLength)
    : message.key ?? null

const defaultContentType = "application/octet-stream"

/**
 * A fetched record as both backends hand it to the runloop: kafkajs's `KafkaMessage` is one as it is; the
 * @platformatic/kafka backend maps its messages to it (`platformatic/consume.ts`).
 */
export interface RawRecord {
  readonly offset: string
  readonly key: Buffer | null
  readonly value: Buffer | null
  readonly headers?: IHeaders | undefined
  readonly timestamp: string
}

/** The fields of an outgoing message's record, whatever client sends it (headers are text). */
export interface RecordFields {
  readonly key: Buffer | string | null
  readonly value: Buffer
  readonly headers: Record<string, string>
  readonly timestamp: string
}

/** The record fields of an outgoing message: native fields first, the rest as headers. */
export const recordFields = (message: Envelope.OutgoingMessage): RecordFields => {
  const headers: Record<string, string> = { ...message.headers, [Headers.messageId]: message.id }
  if (message.contentType !== defaultContentType) headers[Headers.contentType] = message.contentType
  else if (Headers.contentType in headers) delete headers[Headers.contentType]
  if (message.correlationId !== undefined) headers[Headers.correlationId] = message.correlationId
  if (message.causationId !== undefined) headers[Headers.causationId] = message.causationId
  const payload = message.payload
  return {
    key: recordKey(message),
    value: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
    headers,
    timestamp: String(message.timestamp)
  }
}

/** The kafkajs record of an outgoing message, for `partition`. */
export const toRecord = (message: Envelope.OutgoingMessage, partition: number): Message => ({
  ...recordFields(message),
  partition
})

/** A delivered key: text when its bytes are valid UTF-8 (which then round-trips exactly), else the bytes. */
export const keyOf = (raw: Buffer | null): { readonly key: string | undefined; readonly keyBytes: Uint8Array | undefined } => {
  if (raw === null) return noKey
  // valid UTF-8: Buffer's own decoding (a BOM is kept, like the decoder below) is the same text, cheaper
  if (isUtf8(raw)) return { key: raw.toString("utf8"), keyBytes: undefined }
  const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
  // not text: keep the exact bytes (a copy, not a view of the fetch buffer) beside the lossy form
  return { key: utf8.decode(bytes), keyBytes: Uint8Array.from(bytes) }
}

const noKey = { key: undefined, keyBytes: undefined } as const

const headerString = (value: IHeaders[string]): string | undefined => {
  if (value === undefined) return undefined
  if (Array.isArray(value)) {
    const last = value[value.length - 1]
    return last === undefined ? undefined : last.toString()
  }
  return value.toString()
}

/** The stable id of a record without one of its own: its coordinates. */
export const brokerId = (destination: string, partition: number, offset: string): string =>
  `${destination}/${partition}/${offset}`

/** A delivered record as an envelope (through `IncomingEnvelope.finish`). */
export const fromRecord = (
  destination: string,
  partition: number,
  message: RawRecord,
  attempt: number,
  now: () => number
): Envelope.Envelope => {
  const headers: Record<string, string> = {}
  let id: string | undefined
  let contentType: string | undefined
  let correlationId: string | undefined
  let causationId: string | undefined
  const raw = message.headers
  if (raw !== undefined) {
    for (const name in raw) {
      const value = headerString(raw[name])
      if (value === undefined) continue
      if (name === Headers.messageId) id = value
      else if (name === Headers.contentType) contentType = value
      else if (name === Headers.correlationId) correlationId = value
      else if (name === Headers.causationId) causationId = value
      else IncomingEnvelope.putHeader(headers, name, value)
    }
  }
  const value = message.value
  const { key, keyBytes } = keyOf(message.key)
  return IncomingEnvelope.finish({
    id,
    brokerId: brokerId(destination, partition, message.offset),
    key,
    keyBytes,
    headers,
    // Kafka's record timestamp is the message's time (CreateTime, or the broker's LogAppendTime)
    timestamp: undefined,
    brokerTimestamp: Number(message.timestamp),
    contentType,
    payload: value === null ? new Uint8Array(0) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    correlationId,
    causationId,
    attempt,
    coordinates: {
      destination,
      lane: String(partition),
      partition,
      offset: message.offset
    }
  }, now)
}
