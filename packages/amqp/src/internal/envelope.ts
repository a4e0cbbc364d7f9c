/**
 * The AMQP mapping of Switchyard's envelope, both ways. On receive every envelope is built through the
 * adapter kit's `IncomingEnvelope.finish`, so a foreign message gets the same fallbacks as on every other
 * broker; on publish nothing amqplib would refuse (a non-finite timestamp, an id past the 255-byte
 * `shortstr`, an out-of-range priority) is passed on.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import type { ConsumeMessage, Options as AmqpOptions } from "amqplib"
import type { Envelope } from "@switchyard/core"
import { Headers } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"

/** Header names mapped to native AMQP properties on publish (see `AmqpBroker.AmqpHeaders`). */
export const AmqpHeaders = {
  replyTo: "x-amqp-reply-to",
  priority: "x-amqp-priority",
  expiration: "x-amqp-expiration",
  attempt: "x-switchyard-attempt"
} as const

const internalHeaders = new Set<string>([
  Headers.key,
  Headers.causationId,
  Headers.timestamp,
  Headers.messageId,
  AmqpHeaders.attempt,
  "x-death",
  "x-delivery-count",
  "x-first-death-exchange",
  "x-first-death-queue",
  "x-first-death-reason",
  "x-last-death-exchange",
  "x-last-death-queue",
  "x-last-death-reason"
])

/** AMQP `shortstr` fields (message-id, correlation-id, …) hold at most 255 bytes. */
export const maxShortString = 255

/**
 * The `message-id` property for an id: the id itself when it fits in a `shortstr`, else a bounded form (a
 * prefix and a digest of the whole id, the same for the same id). The full id then travels in the
 * `x-switchyard-id` header, which receivers read first.
 */
export const boundedMessageId = (id: string): string => {
  // at most 3 UTF-8 bytes per UTF-16 unit: short ids need no measuring
  if (id.length * 3 <= maxShortString || Buffer.byteLength(id, "utf8") <= maxShortString) return id
  const digest = createHash("sha256").update(id).digest("base64url").slice(0, 32)
  let prefix = ""
  let bytes = 0
  for (const char of id) {
    const size = Buffer.byteLength(char, "utf8")
    if (bytes + size > maxShortString - digest.length - 1) break
    prefix += char
    bytes += size
  }
  return `${prefix}~${digest}`
}

/** Header values are AMQP field values; Switchyard's headers are strings. */
export const headerString = (value: unknown): string | undefined =>
  typeof value === "string"
    ? value
    : typeof value === "number" || typeof value === "boolean" || typeof value === "bigint"
    ? String(value)
    : Buffer.isBuffer(value)
    ? value.toString("utf8")
    : undefined

/**
 * The message's own id. AMQP's id is the `message-id` property; the `x-switchyard-id` header only carries
 * the whole of an id that was too long for it, so it counts only when the property is its bounded form.
 * A foreign producer's `x-switchyard-id` header alone is not an id (it could repeat across messages).
 */
export const ownId = (property: string | undefined, header: string | undefined): string | undefined =>
  header !== undefined && property !== undefined && property !== header && property === boundedMessageId(header)
    ? header
    : property

const priorityOf = (value: string): number | undefined => {
  const n = Number(value)
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : undefined
}

/** The publish options of a message: native properties plus Switchyard's headers. */
export const toPublishOptions = (
  message: Envelope.OutgoingMessage,
  mandatory: boolean,
  attempt?: number
): AmqpOptions.Publish => {
  const headers: Record<string, string> = {}
  let replyTo: string | undefined
  let priority: number | undefined
  let expiration: string | undefined
  for (const name in message.headers) {
    const value = message.headers[name]!
    if (name === AmqpHeaders.replyTo) replyTo = value
    else if (name === AmqpHeaders.priority) priority = priorityOf(value)
    else if (name === AmqpHeaders.expiration) expiration = /^\d+$/.test(value) ? value : undefined
    else headers[name] = value
  }
  if (message.key !== undefined) headers[Headers.key] = message.key
  if (message.causationId !== undefined) headers[Headers.causationId] = message.causationId
  const timestamp = Number.isFinite(message.timestamp) && message.timestamp >= 0 ? message.timestamp : undefined
  if (timestamp !== undefined) headers[Headers.timestamp] = String(timestamp)
  if (attempt !== undefined) headers[AmqpHeaders.attempt] = String(attempt)
  const messageId = boundedMessageId(message.id)
  if (messageId !== message.id) headers[Headers.messageId] = message.id
  const options: AmqpOptions.Publish = {
    persistent: true,
    mandatory,
    messageId,
    contentType: message.contentType,
    headers
  }
  if (timestamp !== undefined) options.timestamp = Math.floor(timestamp / 1000)
  if (message.correlationId !== undefined) options.correlationId = message.correlationId
  if (replyTo !== undefined) options.replyTo = replyTo
  if (priority !== undefined) options.priority = priority
  if (expiration !== undefined) options.expiration = expiration
  return options
}

/** A Buffer view of a payload, without copying. */
export const toBuffer = (payload: Uint8Array): Buffer =>
  Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)

const timestampValue = (value: unknown): number | string | undefined =>
  typeof value === "number" ? value : headerString(value)

/** The AMQP `timestamp` property (seconds) in epoch milliseconds. */
const brokerTimestamp = (value: unknown): number | undefined =>
  typeof value === "number" ? value * 1000 : typeof value === "bigint" ? Number(value) * 1000 : undefined

/**
 * The envelope of a delivered message. `attempt` is computed by the caller (it depends on the queue type);
 * `now` is the Clock's time, read only when the message carries no usable time.
 */
export const toEnvelope = (
  msg: ConsumeMessage,
  destination: string,
  attempt: number,
  now: () => number
): Envelope.Envelope => {
  const props = msg.properties
  const raw = props.headers ?? {}
  const headers: Record<string, string> = {}
  for (const name in raw) {
    if (internalHeaders.has(name)) continue
    const value = headerString(raw[name])
    if (value !== undefined) headers[name] = value
  }
  const replyTo = headerString(props.replyTo)
  if (replyTo !== undefined && replyTo !== "") headers[AmqpHeaders.replyTo] = replyTo
  return IncomingEnvelope.finish({
    id: ownId(headerString(props.messageId), headerString(raw[Headers.messageId])),
    key: headerString(raw[Headers.key]),
    headers,
    timestamp: timestampValue(raw[Headers.timestamp]),
    brokerTimestamp: brokerTimestamp(props.timestamp),
    contentType: headerString(props.contentType),
    payload: new Uint8Array(msg.content.buffer, msg.content.byteOffset, msg.content.byteLength),
    correlationId: headerString(props.correlationId),
    causationId: headerString(raw[Headers.causationId]),
    attempt,
    coordinates: { destination, deliveryTag: msg.fields.deliveryTag, routingKey: msg.fields.routingKey }
  }, now)
}

/** The id a delivered message carries, before fallbacks (used to count nacks on classic queues). */
export const carriedId = (msg: ConsumeMessage): string | undefined => {
  const raw = msg.properties.headers ?? {}
  const id = ownId(headerString(msg.properties.messageId), headerString(raw[Headers.messageId]))
  return id === "" ? undefined : id
}
