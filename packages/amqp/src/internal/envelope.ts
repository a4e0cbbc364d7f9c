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

type PublishOptions = AmqpOptions.Publish & { headers: Record<string, string> }

/** A user header: an `x-amqp-*` one becomes its native property (invalid values are not sent), the rest a header. */
const putUserHeader = (options: PublishOptions, name: string, value: string): void => {
  if (name === AmqpHeaders.replyTo) options.replyTo = value
  else if (name === AmqpHeaders.type) options.type = value
  else if (name === AmqpHeaders.priority) {
    const priority = priorityOf(value)
    if (priority !== undefined) options.priority = priority
  } else if (name === AmqpHeaders.expiration) {
    if (/^\d+$/.test(value)) options.expiration = value
  } else options.headers[name] = value
}

const publishTimestamp = (timestamp: number): number | undefined =>
  Number.isFinite(timestamp) && timestamp >= 0 ? timestamp : undefined

/**
 * The amqplib publish options of a message: native properties first, then the fewest headers (what AMQP has
 * no property for, or no room in one). Built in one object (the publish hot path); the envelope's headers
 * are written after the user's, so a user header of the same name never overrides them.
 */
export const toPublishOptions = (
  message: Envelope.OutgoingMessage,
  options: { readonly mandatory: boolean; readonly attempt?: number | undefined }
): AmqpOptions.Publish => {
  const messageId = boundedMessageId(message.id)
  const publish: PublishOptions = {
    persistent: true,
    mandatory: options.mandatory,
    messageId,
    contentType: message.contentType,
    headers: {}
  }
  const user = message.headers
  for (const name of Object.keys(user)) putUserHeader(publish, name, user[name]!)
  const headers = publish.headers
  const timestamp = publishTimestamp(message.timestamp)
  if (timestamp !== undefined) {
    publish.timestamp = Math.floor(timestamp / 1000)
    if (timestamp % 1000 !== 0) headers[Headers.timestamp] = String(timestamp)
  }
  if (message.key !== undefined) headers[Headers.key] = message.key
  if (message.causationId !== undefined) headers[Headers.causationId] = message.causationId
  if (options.attempt !== undefined) headers[AmqpHeaders.attempt] = String(options.attempt)
  if (messageId !== message.id) headers[Headers.messageId] = message.id
  const correlationId = message.correlationId
  if (correlationId !== undefined) {
    if (fitsShortString(correlationId)) publish.correlationId = correlationId
    else headers[Headers.correlationId] = correlationId
  }
  return publish
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

/**
 * A delivery's headers as the message's own: string values, without the envelope's and the broker's; the
 * native reply-to and type as their `x-amqp-*` headers.
 */
const userHeaders = (props: Message["properties"]): Record<string, string> => {
  const headers: Record<string, string> = {}
  const raw = props.headers
  if (raw !== undefined) {
    for (const name of Object.keys(raw)) {
      const value = internalHeaders.has(name) ? undefined : headerString(raw[name])
      if (value !== undefined) IncomingEnvelope.putHeader(headers, name, value)
    }
  }
  const replyTo = headerString(props.replyTo)
  const type = headerString(props.type)
  if (replyTo !== undefined && replyTo !== "") headers[AmqpHeaders.replyTo] = replyTo
  if (type !== undefined && type !== "") headers[AmqpHeaders.type] = type
  return headers
}

/** The id a delivered message carries, before fallbacks (also the key of classic queues' nack counts). */
export const carriedId = (message: Pick<Message, "properties">): string | undefined => {
  const id = ownId(headerString(message.properties.messageId), headerString(message.properties.headers?.[Headers.messageId]))
  return id === "" ? undefined : id
}

/**
 * What a delivered message carries, before the kit's fallbacks. `attempt` is computed by the caller (it
 * depends on the queue type), and so may be the carried `id`.
 */
export const toDraft = (
  message: Pick<Message, "properties" | "fields" | "content">,
  destination: string,
  attempt: number,
  id: string | undefined = carriedId(message)
): IncomingEnvelope.Draft => {
  const props = message.properties
  const raw = props.headers
  const millis = propertyMillis(props.timestamp)
  const timestampHeader = raw?.[Headers.timestamp]
  return {
    id,
    key: headerString(raw?.[Headers.key]),
    headers: userHeaders(props),
    timestamp: typeof timestampHeader === "number" ? timestampHeader : headerString(timestampHeader) ?? millis,
    brokerTimestamp: millis,
    contentType: headerString(props.contentType),
    payload: payloadOf(message.content),
    correlationId: headerString(props.correlationId) ?? headerString(raw?.[Headers.correlationId]),
    causationId: headerString(raw?.[Headers.causationId]),
    attempt,
    coordinates: { destination, deliveryTag: message.fields.deliveryTag, routingKey: message.fields.routingKey }
  }
}

/** The envelope of a delivered message; `now` is the Clock's time, read only when it carries no usable time. */
export const toEnvelope = (
  message: Pick<Message, "properties" | "fields" | "content">,
  destination: string,
  attempt: number,
  now: () => number,
  id: string | undefined = carriedId(message)
): Envelope.Envelope => IncomingEnvelope.finish(toDraft(message, destination, attempt, id), now)

/** The delivery attempt a delayed retry carried (`x-switchyard-attempt`), 1 for a first delivery. */
export const baseAttempt = (message: Pick<Message, "properties">): number =>
  Number(headerString(message.properties.headers?.[AmqpHeaders.attempt]) ?? "1") || 1
