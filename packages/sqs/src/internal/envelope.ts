/**
 * The SQS message mapping, both ways, in one place.
 *
 * Outgoing: Switchyard's envelope fields and the user's headers travel **packed in one message attribute**
 * (`switchyard`, a JSON object), so SQS's limit of 10 message attributes never drops a header. The body is the
 * payload's text when it is valid UTF-8 made only of characters SQS accepts (XML 1.0 characters; carriage
 * returns excluded, so no transport can normalise line ends); anything else (binary, lone `\r`, an empty
 * payload, which SQS refuses) travels base64-encoded with `"enc":"base64"` (or `"empty"`) in the attribute, so
 * bytes come back exact. FIFO queues get `MessageGroupId` from the key and `MessageDeduplicationId` from the
 * id (both hashed when SQS would refuse them). A message larger than SQS's 256 KiB (body + attributes) is
 * refused before sending.
 *
 * Incoming: a message → `IncomingEnvelope.Draft` → `IncomingEnvelope.finish`. A missing or malformed
 * `switchyard` attribute (messages from other producers) means: no own id (the SQS `MessageId`, stable across
 * redeliveries, is the broker id), the body as text, and every other message attribute as a header (numbers as
 * their text, binary values as base64). `ApproximateReceiveCount` is the attempt; `SentTimestamp` the broker
 * time; the FIFO `MessageGroupId` the lane.
 */
import { createHash } from "node:crypto"
import type { Envelope } from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"
import type { Message, MessageAttributeValue, SendMessageBatchRequestEntry } from "@aws-sdk/client-sqs"
import { Option, Schema } from "effect"

/** The message attribute holding Switchyard's envelope fields and the user's headers. */
export const metadataAttribute = "switchyard"

/** SQS's largest message: body plus attributes (names, types and values). */
export const maxMessageBytes = 262_144

/** The packed metadata, as written in {@link metadataAttribute}. */
export const Packed = Schema.Struct({
  id: Schema.optional(Schema.String),
  key: Schema.optional(Schema.String),
  kb: Schema.optional(Schema.String),
  ts: Schema.optional(Schema.Number),
  ct: Schema.optional(Schema.String),
  corr: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.String),
  h: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  enc: Schema.optional(Schema.Literals(["base64", "empty"]))
})
/** The packed metadata. */
export type Packed = typeof Packed.Type

const decodePacked = Schema.decodeUnknownOption(Schema.fromJsonString(Packed))

const encoder = new TextEncoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

// XML 1.0 characters that SQS accepts, without \r (see the module doc)
const sqsSafe = /^[\t\n\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u

const utf8Text = (bytes: Uint8Array): string | undefined => {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

/**
 * The packed metadata as an attribute value. `JSON.stringify` escapes control characters and lone surrogates
 * but leaves U+FFFE and U+FFFF, which SQS refuses in attribute values (ElasticMQ refuses the whole batch), so
 * those two are escaped as well; JSON reads them back unchanged.
 */
const packedText = (packed: Packed): string =>
  JSON.stringify(packed).replace(/[\uFFFE\uFFFF]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`)

/** The SQS body of a payload and how it is encoded (`undefined`: the text itself). */
export const bodyOf = (payload: Uint8Array): { readonly body: string; readonly enc: Packed["enc"] } => {
  if (payload.length === 0) return { body: "-", enc: "empty" }
  const text = utf8Text(payload)
  return text !== undefined && sqsSafe.test(text)
    ? { body: text, enc: undefined }
    : { body: Buffer.from(payload).toString("base64"), enc: "base64" }
}

/** The payload of an SQS body, given its encoding. */
export const payloadOf = (body: string, enc: Packed["enc"]): Uint8Array =>
  enc === "empty"
    ? new Uint8Array()
    : enc === "base64"
    ? new Uint8Array(Buffer.from(body, "base64"))
    : encoder.encode(body)

// MessageGroupId / MessageDeduplicationId: 1-128 characters of printable ASCII
const fifoToken = (value: string): string =>
  /^[\x21-\x7e]{1,128}$/.test(value) ? value : createHash("sha256").update(value).digest("hex")

/** The FIFO group of a message: its key (all keyless messages share one group, in order). */
export const groupIdOf = (key: string | undefined): string => key === undefined ? "switchyard-no-key" : fifoToken(key)

const utf8Length = (text: string): number => Buffer.byteLength(text, "utf8")

/** The size SQS counts for a message: body plus each attribute's name, type and value. */
export const sizeOf = (body: string, attributes: Readonly<Record<string, MessageAttributeValue>>): number =>
  Object.entries(attributes).reduce(
    (sum, [name, value]) => sum + utf8Length(name) + utf8Length(value.DataType ?? "") + utf8Length(value.StringValue ?? ""),
    utf8Length(body)
  )

/** What publishing sends for one message (without the batch entry id). */
export interface Outgoing {
  readonly entry: Omit<SendMessageBatchRequestEntry, "Id">
  readonly bytes: number
}

/**
 * The SQS message of an outgoing message.
 */
export const toSqs = (message: Envelope.OutgoingMessage, fifo: boolean): Outgoing => {
  const { body, enc } = bodyOf(message.payload)
  const packed: Packed = {
    id: message.id,
    ...(message.key !== undefined ? { key: message.key } : {}),
    ...(message.keyBytes !== undefined ? { kb: Buffer.from(message.keyBytes).toString("base64") } : {}),
    ts: message.timestamp,
    ct: message.contentType,
    ...(message.correlationId !== undefined ? { corr: message.correlationId } : {}),
    ...(message.causationId !== undefined ? { cause: message.causationId } : {}),
    ...(Object.keys(message.headers).length > 0 ? { h: message.headers } : {}),
    ...(enc !== undefined ? { enc } : {})
  }
  const attributes: Record<string, MessageAttributeValue> = {
    [metadataAttribute]: { DataType: "String", StringValue: packedText(packed) }
  }
  return {
    entry: {
      MessageBody: body,
      MessageAttributes: attributes,
      ...(fifo
        ? { MessageGroupId: groupIdOf(message.key), MessageDeduplicationId: fifoToken(message.dedupId ?? message.id) }
        : {})
    },
    bytes: sizeOf(body, attributes)
  }
}

const attributeText = (value: MessageAttributeValue): string | undefined =>
  value.StringValue !== undefined
    ? value.StringValue
    : value.BinaryValue !== undefined
    ? Buffer.from(value.BinaryValue).toString("base64")
    : undefined

/** Every attribute except the packed one, as headers (messages from other producers). */
const foreignHeaders = (attributes: Message["MessageAttributes"], skipPacked: boolean): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (skipPacked && name === metadataAttribute) continue
    const text = attributeText(value)
    if (text !== undefined) IncomingEnvelope.putHeader(headers, name, text)
  }
  return headers
}

const numberOf = (text: string | undefined): number | undefined => {
  if (text === undefined || text.trim() === "") return undefined
  const n = Number(text)
  return Number.isFinite(n) ? n : undefined
}

/** The packed metadata of a received message, when it has a well-formed one. */
export const packedOf = (message: Message): Option.Option<Packed> => {
  const raw = message.MessageAttributes?.[metadataAttribute]?.StringValue
  return raw === undefined ? Option.none() : decodePacked(raw)
}

/**
 * The envelope of a received message.
 */
export const fromSqs = (destination: string, message: Message, now: () => number): Envelope.Envelope => {
  const packed = packedOf(message)
  const meta: Packed = Option.getOrElse(packed, (): Packed => ({}))
  const system = message.Attributes ?? {}
  const headers = { ...foreignHeaders(message.MessageAttributes, Option.isSome(packed)), ...meta.h }
  const lane = system["MessageGroupId"]
  return IncomingEnvelope.finish({
    id: meta.id,
    brokerId: message.MessageId,
    // a foreign message's key is its FIFO group; a Switchyard message without a key keeps none (its group is
    // only the placeholder of keyless messages)
    key: Option.isSome(packed) ? meta.key : lane,
    keyBytes: meta.kb === undefined ? undefined : new Uint8Array(Buffer.from(meta.kb, "base64")),
    headers,
    timestamp: meta.ts,
    brokerTimestamp: numberOf(system["SentTimestamp"]),
    contentType: meta.ct,
    payload: payloadOf(message.Body ?? "", meta.enc),
    correlationId: meta.corr,
    causationId: meta.cause,
    attempt: numberOf(system["ApproximateReceiveCount"]),
    coordinates: {
      destination,
      ...(message.MessageId !== undefined ? { offset: message.MessageId } : {}),
      ...(lane !== undefined ? { lane } : {})
    }
  }, now)
}
