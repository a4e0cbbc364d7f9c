/**
 * The one AMQP mapping of Switchyard's envelope, both ways. Native AMQP properties come first: `message-id`,
 * `timestamp`, `correlation-id`, `content-type`, `type`, `reply-to`, `priority`, `expiration`; headers carry
 * only what AMQP has no property for (the key, the causation id), the milliseconds of a timestamp that is not
 * a whole second, an id or correlation id too long for a `shortstr`, and the attempt of a delayed retry.
 *
 * On receive a delivery becomes a `Draft` and then an `Envelope` through the kit's `IncomingEnvelope.finish`,
 * so a foreign message gets the same fallbacks as on every other broker. On publish nothing amqplib would
 * refuse (a non-finite timestamp, an id past the 255-byte `shortstr`, an out-of-range priority) is passed on.
 */
import { createHash } from "node:crypto"
import type { Message, Options as AmqpOptions } from "amqplib"
import type { Envelope } from "@switchyard/core"
import { Headers } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"

/** Header names mapped to native AMQP properties (see `AmqpBroker.AmqpHeaders`). */
export const AmqpHeaders = {
  replyTo: "x-amqp-reply-to",
  priority: "x-amqp-priority",
  expiration: "x-amqp-expiration",
  type: "x-amqp-type",
  attempt: "x-switchyard-attempt"
} as const

/** Headers that describe the envelope or the broker's bookkeeping: never shown as the message's headers. */
const internalHeaders = new Set<string>([
  Headers.key,
  Headers.causationId,
  Headers.correlationId,
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

const fitsShortString = (text: string): boolean =>
  // at most 3 UTF-8 bytes per UTF-16 unit: short texts need no measuring
  text.length * 3 <= maxShortString || Buffer.byteLength(text, "utf8") <= maxShortString

const prefixWithin = (text: string, bytes: number): string => {
  let prefix = ""
  let size = 0
  for (const char of text) {
    size += Buffer.byteLength(char, "utf8")
    if (size > bytes) break
    prefix += char
  }
  return prefix
}

/**
 * The `message-id` property for an id: the id itself when it fits in a `shortstr`, else a bounded form (a
 * prefix and a digest of the whole id, the same for the same id). The full id then travels in the
 * `x-switchyard-id` header, which receivers read first.
 */
export const boundedMessageId = (id: string): string => {
  if (fitsShortString(id)) return id
  const digest = createHash("sha256").update(id).digest("base64url").slice(0, 32)
  return `${prefixWithin(id, maxShortString - digest.length - 1)}~${digest}`
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

/** The native properties users set through `x-amqp-*` headers, and the headers left. */
const nativeFromHeaders = (headers: Envelope.OutgoingMessage["headers"]) => {
  const rest: Record<string, string> = {}
  const native: { replyTo?: string; priority?: number; expiration?: string; type?: string } = {}
  for (const [name, value] of Object.entries(headers)) {
    if (name === AmqpHeaders.replyTo) native.replyTo = value
    else if (name === AmqpHeaders.type) native.type = value
    else if (name === AmqpHeaders.priority) {
      const priority = priorityOf(value)
      if (priority !== undefined) native.priority = priority
    } else if (name === AmqpHeaders.expiration) {
      if (/^\d+$/.test(value)) native.expiration = value
    } else rest[name] = value
  }
  return { native, rest }
}

const publishTimestamp = (timestamp: number): number | undefined =>
  Number.isFinite(timestamp) && timestamp >= 0 ? timestamp : undefined

/** Switchyard's headers for what AMQP has no property for (or no room in one). */
const envelopeHeaders = (message: Envelope.OutgoingMessage, attempt: number | undefined): Record<string, string> => {
  const headers: Record<string, string> = {}
  const timestamp = publishTimestamp(message.timestamp)
  if (message.key !== undefined) headers[Headers.key] = message.key
  if (message.causationId !== undefined) headers[Headers.causationId] = message.causationId
  if (timestamp !== undefined && timestamp % 1000 !== 0) headers[Headers.timestamp] = String(timestamp)
  if (attempt !== undefined) headers[AmqpHeaders.attempt] = String(attempt)
  if (boundedMessageId(message.id) !== message.id) headers[Headers.messageId] = message.id
  if (message.correlationId !== undefined && !fitsShortString(message.correlationId)) {
    headers[Headers.correlationId] = message.correlationId
  }
  return headers
}

/** The amqplib publish options of a message: native properties first, then the fewest headers. */
export const toPublishOptions = (
  message: Envelope.OutgoingMessage,
  options: { readonly mandatory: boolean; readonly attempt?: number | undefined }
): AmqpOptions.Publish => {
  const { native, rest } = nativeFromHeaders(message.headers)
  const timestamp = publishTimestamp(message.timestamp)
  const correlationId = message.correlationId !== undefined && fitsShortString(message.correlationId)
    ? message.correlationId
    : undefined
  return {
    persistent: true,
    mandatory: options.mandatory,
    messageId: boundedMessageId(message.id),
    contentType: message.contentType,
    headers: { ...rest, ...envelopeHeaders(message, options.attempt) },
    ...(timestamp !== undefined ? { timestamp: Math.floor(timestamp / 1000) } : {}),
    ...(correlationId !== undefined ? { correlationId } : {}),
    ...native
  }
}

/** A Buffer view of a payload, without copying. */
export const toBuffer = (payload: Uint8Array): Buffer =>
  Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)

/** A Uint8Array view of a message's content, without copying. */
export const payloadOf = (content: Buffer): Uint8Array =>
  new Uint8Array(content.buffer, content.byteOffset, content.byteLength)

/** The AMQP `timestamp` property (seconds) in epoch milliseconds. */
const propertyMillis = (value: unknown): number | undefined =>
  typeof value === "number" ? value * 1000 : typeof value === "bigint" ? Number(value) * 1000 : undefined

/** A delivery's headers as the message's own: string values, without the envelope's and the broker's. */
const userHeaders = (message: Pick<Message, "properties">): Record<string, string> => {
  const props = message.properties
  const headers: Record<string, string> = {}
  for (const [name, raw] of Object.entries(props.headers ?? {})) {
    const value = internalHeaders.has(name) ? undefined : headerString(raw)
    if (value !== undefined) headers[name] = value
  }
  const replyTo = headerString(props.replyTo)
  const type = headerString(props.type)
  if (replyTo !== undefined && replyTo !== "") headers[AmqpHeaders.replyTo] = replyTo
  if (type !== undefined && type !== "") headers[AmqpHeaders.type] = type
  return headers
}

/** The id a delivered message carries, before fallbacks (also the key of classic queues' nack counts). */
export const carriedId = (message: Pick<Message, "properties">): string | undefined => {
  const raw = message.properties.headers ?? {}
  const id = ownId(headerString(message.properties.messageId), headerString(raw[Headers.messageId]))
  return id === "" ? undefined : id
}

/**
 * What a delivered message carries, before the kit's fallbacks. `attempt` is computed by the caller (it
 * depends on the queue type).
 */
export const toDraft = (
  message: Pick<Message, "properties" | "fields" | "content">,
  destination: string,
  attempt: number
): IncomingEnvelope.Draft => {
  const props = message.properties
  const raw = props.headers ?? {}
  const millis = propertyMillis(props.timestamp)
  const timestampHeader = raw[Headers.timestamp]
  return {
    id: carriedId(message),
    key: headerString(raw[Headers.key]),
    headers: userHeaders(message),
    timestamp: typeof timestampHeader === "number" ? timestampHeader : headerString(timestampHeader) ?? millis,
    brokerTimestamp: millis,
    contentType: headerString(props.contentType),
    payload: payloadOf(message.content),
    correlationId: headerString(props.correlationId) ?? headerString(raw[Headers.correlationId]),
    causationId: headerString(raw[Headers.causationId]),
    attempt,
    coordinates: { destination, deliveryTag: message.fields.deliveryTag, routingKey: message.fields.routingKey }
  }
}

/** The envelope of a delivered message; `now` is the Clock's time, read only when it carries no usable time. */
export const toEnvelope = (
  message: Pick<Message, "properties" | "fields" | "content">,
  destination: string,
  attempt: number,
  now: () => number
): Envelope.Envelope => IncomingEnvelope.finish(toDraft(message, destination, attempt), now)

/** The delivery attempt a delayed retry carried (`x-switchyard-attempt`), 1 for a first delivery. */
export const baseAttempt = (message: Pick<Message, "properties">): number =>
  Number(headerString(message.properties.headers?.[AmqpHeaders.attempt]) ?? "1") || 1
