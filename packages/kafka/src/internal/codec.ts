/**
 * Envelope <-> Kafka record mapping. Kafka has native key, headers and timestamp; the id, correlation id,
 * causation id and content type travel as headers (names from core's `Headers`).
 *
 * @internal
 */
import { Headers } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import type { IHeaders, KafkaMessage, Message } from "kafkajs"

const reserved = new Set<string>([
  Headers.messageId,
  Headers.correlationId,
  Headers.causationId,
  Headers.contentType
])

/** @internal */
export const toRecord = (message: Envelope.OutgoingMessage, partition: number): Message => {
  const headers: Record<string, string> = { ...message.headers }
  headers[Headers.messageId] = message.id
  headers[Headers.contentType] = message.contentType
  if (message.correlationId !== undefined) headers[Headers.correlationId] = message.correlationId
  if (message.causationId !== undefined) headers[Headers.causationId] = message.causationId
  const payload = message.payload
  return {
    key: message.key ?? null,
    value: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
    headers,
    timestamp: String(message.timestamp),
    partition
  }
}

const headerString = (value: IHeaders[string]): string | undefined => {
  if (value === undefined) return undefined
  if (Array.isArray(value)) {
    const last = value[value.length - 1]
    return last === undefined ? undefined : last.toString()
  }
  return value.toString()
}

/** @internal */
export const fromRecord = (
  destination: string,
  partition: number,
  message: KafkaMessage,
  attempt: number
): Envelope.Envelope => {
  const headers: Record<string, string> = {}
  let id = ""
  let contentType = "application/octet-stream"
  let correlationId: string | undefined
  let causationId: string | undefined
  const raw = message.headers
  if (raw !== undefined) {
    for (const name in raw) {
      const value = headerString(raw[name])
      if (value === undefined) continue
      if (reserved.has(name)) {
        if (name === Headers.messageId) id = value
        else if (name === Headers.contentType) contentType = value
        else if (name === Headers.correlationId) correlationId = value
        else causationId = value
      } else {
        headers[name] = value
      }
    }
  }
  const value = message.value
  return {
    id: id === "" ? `${destination}/${partition}/${message.offset}` : id,
    key: message.key === null ? undefined : message.key.toString(),
    headers,
    timestamp: Number(message.timestamp),
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
  }
}
