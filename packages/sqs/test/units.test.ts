/**
 * Pure parts, no server: the envelope mapping both ways (`toSqs` / `fromSqs`: round trips as a property, headers
 * packed in one attribute, base64 bodies with their marker, FIFO group and deduplication ids, foreign and
 * malformed metadata, the size SQS counts) and the classification of AWS SDK failures into `Errors.Reason`
 * kinds, on the SDK's own exceptions (deserialized by the real client from canned HTTP answers), a real refused
 * connection, and the per-entry errors of `SendMessageBatch` through the publish path.
 */
import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import {
  GetQueueUrlCommand,
  type Message,
  QueueDoesNotExist,
  RequestThrottled,
  SQSClient
} from "@aws-sdk/client-sqs"
import { Envelope, Errors } from "@switchyard/core"
import { Effect, Result } from "effect"
import * as fc from "fast-check"
import { SqsConnection, SqsTopology } from "../src/index.ts"
import { fromSqs, maxMessageBytes, metadataAttribute, toSqs } from "../src/internal/envelope.ts"
import {
  ackError,
  connectionError,
  entryError,
  kindOf,
  publishError,
  reasonOf,
  subscribeError
} from "../src/internal/errors.ts"
import * as Publish from "../src/internal/publish.ts"
import * as QueueUrl from "../src/internal/queueUrl.ts"
import { ElasticMQ } from "../src/testing/index.ts"

const encoder = new TextEncoder()
const now = () => 1_800_000_000_000

/** What SQS hands back for a sent entry (standard queue unless `groupId`). */
const received = (
  entry: ReturnType<typeof toSqs>["entry"],
  fields: { readonly messageId?: string; readonly receiveCount?: number; readonly groupId?: string } = {}
): Message => ({
  MessageId: fields.messageId ?? "0b9e2c4e-sqs-id",
  ReceiptHandle: "handle",
  Body: entry.MessageBody,
  MessageAttributes: entry.MessageAttributes,
  Attributes: {
    ApproximateReceiveCount: String(fields.receiveCount ?? 1),
    SentTimestamp: "1700000000000",
    ...(fields.groupId !== undefined ? { MessageGroupId: fields.groupId } : {})
  }
})

const packedText = (entry: ReturnType<typeof toSqs>["entry"]): string => {
  const value = entry.MessageAttributes?.[metadataAttribute]?.StringValue
  assert.isString(value, "no packed attribute")
  return value ?? ""
}

const utf8 = (text: string) => Buffer.byteLength(text, "utf8")

// --- arbitraries (style of packages/nats/test/arbitraries.ts) ---
const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.constantFrom("", " ", "line 1\r\nline 2", "\uFFFE", "žluťoučký", "a\u0000b", "{\"id\":1}")
)
const nonBlank = text.filter((s) => s.trim() !== "" && s.length <= 255)
const headerName = fc.oneof(
  fc.stringMatching(/^x-[a-z][a-z0-9-]{0,10}$/),
  text,
  fc.constantFrom("__proto__", "constructor", metadataAttribute, "traceparent")
)
const payload = fc.oneof(fc.uint8Array({ maxLength: 64 }), text.map((s) => encoder.encode(s)))

const outgoingMessage: fc.Arbitrary<Envelope.OutgoingMessage> = fc.record({
  payload,
  id: nonBlank,
  dedupId: fc.option(nonBlank, { nil: undefined }),
  key: fc.option(text, { nil: undefined }),
  keyBytes: fc.option(fc.uint8Array({ maxLength: 8 }), { nil: undefined }),
  headers: fc.dictionary(headerName, text, { maxKeys: 25 }),
  timestamp: fc.integer({ min: 1, max: 4_000_000_000_000 }),
  contentType: fc.oneof(fc.constant("application/json"), nonBlank),
  correlationId: fc.option(nonBlank, { nil: undefined }),
  causationId: fc.option(nonBlank, { nil: undefined })
}).map(({ dedupId, keyBytes, payload, ...fields }) => ({
  ...Envelope.outgoing(payload, fields),
  ...(dedupId === undefined ? {} : { dedupId }),
  ...(keyBytes === undefined ? {} : { keyBytes })
}))

/** The fields a round trip keeps. */
const kept = (m: Envelope.OutgoingMessage) => ({
  id: m.id,
  key: m.key,
  keyBytes: m.keyBytes,
  headers: m.headers,
  timestamp: m.timestamp,
  contentType: m.contentType,
  payload: m.payload,
  correlationId: m.correlationId,
  causationId: m.causationId
})

// characters SQS refuses in a body (outside XML 1.0) and the carriage return the mapping keeps out of text bodies
const unsafeInBody = /[\u0000-\u0008\u000B\u000C\u000D\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDFFF]/u

describe("envelope mapping", () => {
  it("round-trips id, key, key bytes, content type, headers, timestamp, correlation and causation; attempt and coordinates from SQS", () => {
    const message: Envelope.OutgoingMessage = {
      ...Envelope.outgoing(encoder.encode("{\"n\":1}"), {
        id: "m-1",
        key: "customer-7",
        headers: { "x-a": "1", traceparent: "00-abc-def-01", "x-ü": "žluť" },
        timestamp: 1_700_000_000_123,
        contentType: "application/json",
        correlationId: "corr",
        causationId: "cause"
      }),
      keyBytes: Uint8Array.of(0xff, 1)
    }
    const { entry } = toSqs(message, false)
    assert.strictEqual(entry.MessageBody, "{\"n\":1}")
    assert.isUndefined(entry.MessageGroupId)
    assert.isUndefined(entry.MessageDeduplicationId)
    const envelope = fromSqs("orders", received(entry, { messageId: "sqs-1", receiveCount: 3 }), now)
    assert.deepStrictEqual(
      { ...kept(envelope), idSource: envelope.idSource, attempt: envelope.attempt, coordinates: envelope.coordinates },
      { ...kept(message), idSource: "message", attempt: 3, coordinates: { destination: "orders", offset: "sqs-1" } }
    )
  })

  it("property: every outgoing message comes back with the same fields, in one attribute and an SQS-safe body", () => {
    fc.assert(
      fc.property(outgoingMessage, fc.integer({ min: 1, max: 50 }), (sent, receiveCount) => {
        const { entry, bytes } = toSqs(sent, false)
        assert.deepStrictEqual(Object.keys(entry.MessageAttributes ?? {}), [metadataAttribute])
        const body = entry.MessageBody ?? ""
        assert.isAbove(body.length, 0, "SQS refuses an empty body")
        assert.isFalse(unsafeInBody.test(body), `a body SQS would refuse or alter: ${JSON.stringify(body)}`)
        assert.strictEqual(bytes, utf8(body) + utf8(metadataAttribute) + utf8("String") + utf8(packedText(entry)))
        const envelope = fromSqs("d", received(entry, { receiveCount }), now)
        assert.deepStrictEqual(kept(envelope), kept(sent))
        assert.strictEqual(envelope.idSource, "message")
        assert.strictEqual(envelope.attempt, receiveCount)
      }),
      { numRuns: 500 }
    )
  })

  it("property (FIFO): a keyed message's group is its key (hashed when SQS would refuse it), its dedup id its dedupId or id; it round-trips", () => {
    fc.assert(
      fc.property(outgoingMessage.filter((m) => m.key !== undefined), (sent) => {
        const { entry } = toSqs(sent, true)
        const group = entry.MessageGroupId ?? ""
        const dedup = entry.MessageDeduplicationId ?? ""
        const printable = /^[\x21-\x7e]{1,128}$/
        assert.match(group, printable)
        assert.match(dedup, printable)
        const sha = (s: string) => createHash("sha256").update(s).digest("hex")
        assert.strictEqual(group, printable.test(sent.key ?? "") ? sent.key : sha(sent.key ?? ""))
        const dedupSource = sent.dedupId ?? sent.id
        assert.strictEqual(dedup, printable.test(dedupSource) ? dedupSource : sha(dedupSource))
        const envelope = fromSqs("d.fifo", received(entry, { groupId: group }), now)
        assert.deepStrictEqual(kept(envelope), kept(sent))
        assert.strictEqual(envelope.coordinates.lane, group)
      }),
      { numRuns: 200 }
    )
  })

  it("FIFO: keyless messages share one group, and come back keyless", () => {
    const { entry } = toSqs(Envelope.outgoing(encoder.encode("a"), { id: "m" }), true)
    assert.strictEqual(entry.MessageGroupId, "switchyard-no-key")
    assert.strictEqual(entry.MessageDeduplicationId, "m")
    const envelope = fromSqs("d.fifo", received(entry, { groupId: "switchyard-no-key" }), now)
    assert.strictEqual(envelope.coordinates.lane, "switchyard-no-key")
    // the group is SQS's lane, not a key the publisher set: a dead letter or redrive of this message would
    // otherwise be republished with key "switchyard-no-key"
    assert.isUndefined(envelope.key, "a keyless message came back with its FIFO group as its key")
  })

  it("the packed attribute holds only characters SQS accepts in an attribute value (U+FFFE and U+FFFF escaped)", () => {
    // JSON.stringify escapes control characters and lone surrogates but not U+FFFE / U+FFFF, which SQS refuses
    // in attribute values (ElasticMQ even fails the whole SendMessageBatch request on U+FFFF)
    const outside = /[\uFFFE\uFFFF]/
    const messages = [
      Envelope.outgoing(encoder.encode("a"), { id: "h", headers: { "x-v": "a\uFFFFb" } }),
      Envelope.outgoing(encoder.encode("a"), { id: "n", headers: { "x-\uFFFE": "v" } }),
      Envelope.outgoing(encoder.encode("a"), { id: "id-\uFFFE" }),
      Envelope.outgoing(encoder.encode("a"), { id: "k", key: "k\uFFFF", correlationId: "c\uFFFE" })
    ]
    for (const message of messages) {
      const { entry } = toSqs(message, false)
      const value = packedText(entry)
      assert.isFalse(outside.test(value), `${message.id}: ${JSON.stringify(value)}`)
      assert.deepStrictEqual(kept(fromSqs("d", received(entry), now)), kept(message), message.id)
    }
  })

  it("more than 10 headers travel packed in one attribute (SQS allows 10) and all come back", () => {
    const headers = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-h-${i}`, `v${i}`]))
    const { entry } = toSqs(Envelope.outgoing(encoder.encode("p"), { id: "h", headers }), false)
    assert.deepStrictEqual(Object.keys(entry.MessageAttributes ?? {}), [metadataAttribute])
    assert.deepStrictEqual(fromSqs("d", received(entry), now).headers, headers)
  })

  it("binary payloads travel base64 with the marker; text, \\r, empty and non-XML characters as the module says", () => {
    const cases: ReadonlyArray<readonly [string, Uint8Array, string, string | undefined]> = [
      ["text", encoder.encode("héllo\n\tworld"), "héllo\n\tworld", undefined],
      ["binary", Uint8Array.of(0, 255, 1, 254), Buffer.from([0, 255, 1, 254]).toString("base64"), "base64"],
      ["invalid UTF-8", Uint8Array.of(0xc3, 0x28), Buffer.from([0xc3, 0x28]).toString("base64"), "base64"],
      ["a carriage return", encoder.encode("a\r\nb"), Buffer.from("a\r\nb").toString("base64"), "base64"],
      ["U+FFFF", encoder.encode("\uFFFF"), Buffer.from("\uFFFF").toString("base64"), "base64"],
      ["NUL", Uint8Array.of(0x61, 0), Buffer.from([0x61, 0]).toString("base64"), "base64"],
      ["empty", new Uint8Array(), "-", "empty"]
    ]
    for (const [label, bytes, body, enc] of cases) {
      const { entry } = toSqs(Envelope.outgoing(bytes, { id: label }), false)
      assert.strictEqual(entry.MessageBody, body, label)
      const packed: unknown = JSON.parse(packedText(entry))
      assert.strictEqual(typeof packed === "object" && packed !== null && "enc" in packed ? packed.enc : undefined, enc, label)
      assert.deepStrictEqual(fromSqs("d", received(entry), now).payload, bytes, label)
    }
  })

  it("a foreign message (no Switchyard attribute): the SQS MessageId is the id, attributes are headers, the body the payload", () => {
    const envelope = fromSqs("orders", {
      MessageId: "sqs-foreign-1",
      Body: "{\"id\":\"o-1\"}",
      MessageAttributes: {
        "x-a": { DataType: "String", StringValue: "1" },
        count: { DataType: "Number", StringValue: "42" },
        blob: { DataType: "Binary", BinaryValue: Uint8Array.of(1, 2, 3) }
      },
      Attributes: { ApproximateReceiveCount: "2", SentTimestamp: "1700000000456", MessageGroupId: "g-1" }
    }, now)
    assert.strictEqual(envelope.id, "sqs-foreign-1")
    assert.strictEqual(envelope.idSource, "broker")
    assert.deepStrictEqual(envelope.headers, { "x-a": "1", count: "42", blob: "AQID" })
    assert.deepStrictEqual(envelope.payload, encoder.encode("{\"id\":\"o-1\"}"))
    assert.strictEqual(envelope.timestamp, 1_700_000_000_456)
    assert.strictEqual(envelope.attempt, 2)
    assert.strictEqual(envelope.contentType, "application/octet-stream")
    assert.strictEqual(envelope.key, "g-1")
    assert.deepStrictEqual(envelope.coordinates, { destination: "orders", offset: "sqs-foreign-1", lane: "g-1" })
  })

  it("a malformed Switchyard attribute is delivered as a foreign message with the SQS id; nothing throws", () => {
    const malformed = [
      "{not json",
      "",
      "null",
      "[]",
      "5",
      "\"text\"",
      "{\"id\": 5, \"h\": [",
      "{\"id\":5}",
      "{\"h\":{\"a\":1}}",
      "{\"h\":null}",
      "{\"enc\":\"gzip\"}",
      "{\"ts\":\"yesterday\"}",
      "{\"key\":[]}"
    ]
    for (const raw of malformed) {
      const message: Message = {
        MessageId: "sqs-2",
        Body: "body",
        MessageAttributes: {
          [metadataAttribute]: { DataType: "String", StringValue: raw },
          "x-a": { DataType: "String", StringValue: "1" }
        },
        Attributes: { ApproximateReceiveCount: "4", SentTimestamp: "1700000000000" }
      }
      const envelope = fromSqs("d", message, now)
      assert.strictEqual(envelope.id, "sqs-2", raw)
      assert.strictEqual(envelope.idSource, "broker", raw)
      assert.deepStrictEqual(envelope.headers, { [metadataAttribute]: raw, "x-a": "1" }, raw)
      assert.deepStrictEqual(envelope.payload, encoder.encode("body"), raw)
      assert.strictEqual(envelope.attempt, 4, raw)
      assert.strictEqual(envelope.timestamp, 1_700_000_000_000, raw)
    }
  })

  it("well-formed metadata with unusable values falls back field by field; a bare message gets a generated id", () => {
    const odd = fromSqs("d", {
      MessageId: "sqs-3",
      Body: "%%%",
      MessageAttributes: { [metadataAttribute]: { DataType: "String", StringValue: "{\"id\":\"  \",\"ts\":-1,\"ct\":\"\",\"enc\":\"base64\"}" } },
      Attributes: { ApproximateReceiveCount: "zero", SentTimestamp: "1700000000000" }
    }, now)
    assert.strictEqual(odd.id, "sqs-3")
    assert.strictEqual(odd.idSource, "broker")
    assert.strictEqual(odd.timestamp, 1_700_000_000_000)
    assert.strictEqual(odd.contentType, "application/octet-stream")
    assert.strictEqual(odd.attempt, 1)
    assert.deepStrictEqual(odd.headers, {})
    const bare = fromSqs("d", {}, now)
    assert.strictEqual(bare.idSource, "generated")
    assert.isAbove(bare.id.length, 0)
    assert.strictEqual(bare.timestamp, now())
    assert.strictEqual(bare.payload.length, 0)
    assert.strictEqual(bare.attempt, 1)
    const noValue = fromSqs("d", { MessageId: "sqs-4", MessageAttributes: { [metadataAttribute]: { DataType: "String" } } }, now)
    assert.strictEqual(noValue.id, "sqs-4")
  })

  it("the size is what SQS counts (body + attribute name, type and value, in UTF-8 bytes); the limit is 256 KiB", () => {
    assert.strictEqual(maxMessageBytes, 256 * 1024)
    const sized = (n: number, fill = "x") =>
      toSqs(Envelope.outgoing(encoder.encode(fill.repeat(n)), { id: "s", headers: { "x-é": "ü" }, timestamp: 1 }), false)
    const small = sized(1)
    const overhead = small.bytes - 1
    assert.strictEqual(
      overhead,
      utf8(metadataAttribute) + utf8("String") + utf8(packedText(small.entry)),
      "the attribute's name, type and value"
    )
    assert.strictEqual(sized(maxMessageBytes - overhead).bytes, maxMessageBytes)
    assert.strictEqual(sized(maxMessageBytes - overhead + 1).bytes, maxMessageBytes + 1)
    assert.strictEqual(sized(1000, "é").bytes, 2000 + overhead, "multi-byte characters count in bytes")
    const binary = toSqs(Envelope.outgoing(new Uint8Array(3000).fill(0xff), { id: "b", timestamp: 1 }), false)
    assert.strictEqual(binary.bytes - utf8(metadataAttribute) - utf8("String") - utf8(packedText(binary.entry)), 4000, "base64 counts")
  })
})

// --- error classification ---

const credentials = ElasticMQ.credentials

/** A real client whose every request gets this HTTP answer (the SDK deserializes it into its exceptions). */
const answering = (statusCode: number, headers: Readonly<Record<string, string>>, body: string) =>
  new SQSClient({
    region: ElasticMQ.region,
    endpoint: "http://127.0.0.1:9",
    credentials,
    maxAttempts: 1,
    md5: false,
    requestHandler: {
      handle: () => Promise.resolve({ response: { statusCode, reason: "", headers: { ...headers }, body: encoder.encode(body) } })
    }
  })

const json = { "content-type": "application/x-amz-json-1.0" }

/** What the SDK throws for a `GetQueueUrl` answered with this. */
const thrownBy = (statusCode: number, headers: Readonly<Record<string, string>>, body: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => answering(statusCode, headers, body)),
    (client) => Effect.flip(Effect.tryPromise({ try: () => client.send(new GetQueueUrlCommand({ QueueName: "q" })), catch: (e) => e })),
    (client) => Effect.sync(() => client.destroy())
  )

/** A JSON-protocol error body, as SQS writes it. */
const serviceError = (type: string, message: string) => JSON.stringify({ __type: type, message })

const nameOf = (error: unknown): unknown => typeof error === "object" && error !== null && "name" in error ? error.name : undefined

const withCode = (code: string, message = code) => Object.assign(new Error(message), { code })

describe("error classification", () => {
  it.effect("a missing queue (QueueDoesNotExist, the legacy AWS.SimpleQueueService.NonExistentQueue code) is NotFound", () =>
    Effect.gen(function*() {
      const sdk = yield* thrownBy(
        400,
        { ...json, "x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender" },
        serviceError("com.amazonaws.sqs#QueueDoesNotExist", "The specified queue does not exist.")
      )
      assert.instanceOf(sdk, QueueDoesNotExist)
      const reason = reasonOf(sdk, "GetQueueUrl")
      assert.strictEqual(reason._tag, "NotFound")
      assert.strictEqual(reason.message, "GetQueueUrl: The specified queue does not exist.")
      assert.strictEqual(reason.code, "QueueDoesNotExist")
      assert.isFalse(reason.isRetryable)
      assert.strictEqual(kindOf({ name: "AWS.SimpleQueueService.NonExistentQueue" }), "NotFound")
      assert.strictEqual(kindOf({ name: "Error", Code: "AWS.SimpleQueueService.NonExistentQueue" }), "NotFound")
      assert.strictEqual(kindOf({ Error: { Code: "AWS.SimpleQueueService.NonExistentQueue" } }), "NotFound")
      assert.strictEqual(kindOf(new QueueDoesNotExist({ message: "gone", $metadata: {} })), "NotFound")
    }))

  it.effect("a refused connection (a real client on a port nobody listens on) is Unreachable, retryable, with its code", () =>
    Effect.gen(function*() {
      const port = yield* ElasticMQ.freePort
      const client = new SQSClient({ region: ElasticMQ.region, endpoint: `http://127.0.0.1:${port}`, credentials, maxAttempts: 1 })
      const error = yield* Effect.flip(Effect.tryPromise({ try: () => client.send(new GetQueueUrlCommand({ QueueName: "q" })), catch: (e) => e }))
      client.destroy()
      const reason = reasonOf(error)
      assert.strictEqual(reason._tag, "Unreachable")
      assert.strictEqual(reason.code, "ECONNREFUSED")
      assert.isTrue(reason.isRetryable)
      const wrapped = new Error("request failed", { cause: withCode("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:9") })
      assert.strictEqual(reasonOf(wrapped)._tag, "Unreachable")
      assert.strictEqual(reasonOf(wrapped).code, "ECONNREFUSED")
      for (const code of ["ENOTFOUND", "EHOSTUNREACH", "ECONNRESET", "EPIPE", "EAI_AGAIN"]) {
        assert.strictEqual(kindOf(withCode(code)), "Unreachable", code)
      }
      assert.strictEqual(kindOf(withCode("ETIMEDOUT")), "Timeout")
      // the Node handler renames a reset socket to TimeoutError and keeps its code: still retryable
      assert.strictEqual(kindOf(Object.assign(withCode("ECONNRESET"), { name: "TimeoutError" })), "Unreachable")
      assert.strictEqual(kindOf(Object.assign(new Error("socket timed out"), { name: "TimeoutError" })), "Timeout")
      assert.strictEqual(kindOf(Object.assign(new Error("aborted"), { name: "AbortError" })), "BrokerClosed")
    }))

  it.effect("throttling is retryable (Unreachable): ThrottlingException, RequestThrottled, OverLimit, HTTP 429/503", () =>
    Effect.gen(function*() {
      const throttled = yield* thrownBy(400, json, serviceError("com.amazon.coral.availability#ThrottlingException", "Rate exceeded"))
      assert.strictEqual(reasonOf(throttled)._tag, "Unreachable")
      assert.strictEqual(reasonOf(throttled).code, "ThrottlingException")
      assert.isTrue(reasonOf(throttled).isRetryable)
      assert.strictEqual(kindOf(new RequestThrottled({ message: "slow down", $metadata: { httpStatusCode: 403 } })), "Unreachable")
      assert.strictEqual(kindOf({ name: "OverLimit", $metadata: { httpStatusCode: 403 } }), "Unreachable")
      assert.strictEqual(kindOf({ name: "SomethingNew", $metadata: { httpStatusCode: 429 } }), "Unreachable")
      const html = yield* thrownBy(503, { "content-type": "text/html" }, "<html>Service Unavailable</html>")
      assert.strictEqual(kindOf(html), "Unreachable", "a 503 whose body is not JSON")
    }))

  it.effect("KMS throttling (KmsThrottled, a transient fault) is retryable", () =>
    Effect.gen(function*() {
      const kms = yield* thrownBy(
        400,
        { ...json, "x-amzn-query-error": "KMS.ThrottlingException;Sender" },
        serviceError("com.amazonaws.sqs#KmsThrottled", "Rate exceeded for KMS")
      )
      assert.strictEqual(nameOf(kms), "KmsThrottled")
      assert.isTrue(Errors.isRetryableKind(kindOf(kms)), `KmsThrottled classified ${kindOf(kms)} (not retryable)`)
    }))

  it.effect("refused credentials are AuthenticationFailed, a denied permission AuthorizationFailed; neither retryable", () =>
    Effect.gen(function*() {
      const unknownKey = yield* thrownBy(400, json, serviceError("com.amazon.coral.service#UnrecognizedClientException", "The security token included in the request is invalid."))
      assert.strictEqual(kindOf(unknownKey), "AuthenticationFailed")
      for (const name of ["InvalidClientTokenId", "SignatureDoesNotMatch", "IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken", "CredentialsProviderError"]) {
        assert.strictEqual(kindOf({ name }), "AuthenticationFailed", name)
      }
      const denied = yield* thrownBy(403, json, serviceError("com.amazon.coral.service#AccessDeniedException", "not authorized to perform sqs:SendMessage"))
      const reason = reasonOf(denied)
      assert.strictEqual(reason._tag, "AuthorizationFailed")
      assert.strictEqual(reason.code, "AccessDeniedException")
      assert.isFalse(reason.isRetryable)
      assert.strictEqual(kindOf({ name: "AccessDenied" }), "AuthorizationFailed")
      assert.strictEqual(kindOf({ name: "KmsAccessDenied", $metadata: { httpStatusCode: 400 } }), "AuthorizationFailed")
      assert.strictEqual(kindOf({ name: "Unmodelled", $metadata: { httpStatusCode: 401 } }), "AuthenticationFailed")
      assert.strictEqual(kindOf({ name: "Unmodelled", $metadata: { httpStatusCode: 403 } }), "AuthorizationFailed")
    }))

  it.effect("invalid requests are Invalid, too large ones TooLarge, conflicting declarations TopologyConflict; none retryable", () =>
    Effect.gen(function*() {
      const invalid = yield* thrownBy(
        400,
        { ...json, "x-amzn-query-error": "InvalidParameterValue;Sender" },
        serviceError("com.amazonaws.sqs#InvalidParameterValueException", "Value for parameter WaitTimeSeconds is invalid.")
      )
      assert.strictEqual(reasonOf(invalid)._tag, "Invalid")
      assert.isFalse(reasonOf(invalid).isRetryable)
      for (const name of ["InvalidParameterValue", "InvalidParameterValueException", "InvalidAttributeValue", "InvalidMessageContents", "ReceiptHandleIsInvalid", "MissingParameter"]) {
        assert.strictEqual(kindOf({ name }), "Invalid", name)
      }
      assert.strictEqual(kindOf({ name: "Unmodelled", $metadata: { httpStatusCode: 400 } }), "Invalid")
      for (const name of ["MessageTooLong", "BatchRequestTooLong"]) assert.strictEqual(kindOf({ name }), "TooLarge", name)
      for (const name of ["QueueNameExists", "QueueAlreadyExists", "QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently"]) {
        assert.strictEqual(kindOf({ name }), "TopologyConflict", name)
      }
    }))

  it.effect("server faults and anything unclassified are Unknown (retryable); a Switchyard reason is kept", () =>
    Effect.gen(function*() {
      const internal = yield* thrownBy(500, json, serviceError("com.amazonaws.sqs#InternalError", "We encountered an internal error."))
      assert.strictEqual(reasonOf(internal)._tag, "Unknown")
      assert.isTrue(reasonOf(internal).isRetryable)
      assert.strictEqual(kindOf("boom"), "Unknown")
      assert.strictEqual(kindOf(undefined), "Unknown")
      assert.strictEqual(kindOf(new Error("plain")), "Unknown")
      assert.strictEqual(reasonOf("boom").message, "boom")
      const own = new Errors.PublishError({ destination: "d", reason: Errors.reason("TooLarge", "big") })
      assert.strictEqual(kindOf(own), "TooLarge")
      const cyclic: { name: string; cause?: unknown } = { name: "Error" }
      cyclic.cause = cyclic
      assert.strictEqual(kindOf(cyclic), "Unknown", "a cyclic cause chain ends")
    }))

  it("the error constructors carry the destination or endpoint and the classified reason", () => {
    const missing = { name: "QueueDoesNotExist", message: "gone" }
    const p = publishError("orders", missing, "SendMessageBatch")
    assert.instanceOf(p, Errors.PublishError)
    assert.strictEqual(p.destination, "orders")
    assert.strictEqual(p.reason._tag, "NotFound")
    assert.strictEqual(p.reason.code, "QueueDoesNotExist")
    const s = subscribeError("orders", withCode("ECONNREFUSED"), "ReceiveMessage")
    assert.instanceOf(s, Errors.SubscribeError)
    assert.strictEqual(s.reason._tag, "Unreachable")
    assert.isTrue(s.isRetryable)
    const a = ackError("orders", { name: "ReceiptHandleIsInvalid" })
    assert.instanceOf(a, Errors.AckError)
    assert.strictEqual(a.reason._tag, "Invalid")
    const c = connectionError("http://127.0.0.1:9324", { name: "TimeoutError", message: "no answer within connectTimeout" })
    assert.instanceOf(c, Errors.ConnectionError)
    assert.strictEqual(c.broker, "http://127.0.0.1:9324")
    assert.strictEqual(c.reason._tag, "Timeout")
  })

  it("entry errors of SendMessageBatch are classified by their Code", () => {
    const cases: ReadonlyArray<readonly [string | undefined, Errors.ErrorKind]> = [
      ["InvalidParameterValue", "Invalid"],
      ["InvalidMessageContents", "Invalid"],
      ["MessageTooLong", "TooLarge"],
      ["AWS.SimpleQueueService.NonExistentQueue", "NotFound"],
      ["RequestThrottled", "Unreachable"],
      ["InternalError", "Unknown"],
      [undefined, "Unknown"]
    ]
    for (const [code, kind] of cases) {
      const reason = reasonOf(entryError(code, code === undefined ? undefined : `refused: ${code}`))
      assert.strictEqual(reason._tag, kind, String(code))
      if (code !== undefined) {
        assert.strictEqual(reason.code, code)
        assert.strictEqual(reason.message, `refused: ${code}`)
      }
    }
    assert.strictEqual(entryError(undefined, undefined).message, "SQS refused the entry")
  })

  it.effect("publishEach: SQS's per-entry answers of SendMessageBatch become one receipt or one classified error per message", () =>
    Effect.gen(function*() {
      const client = answering(200, json, JSON.stringify({
        Successful: [{ Id: "0", MessageId: "sqs-ok", MD5OfMessageBody: "" }],
        Failed: [
          { Id: "1", SenderFault: true, Code: "InvalidParameterValue", Message: "Message contains invalid characters" },
          { Id: "2", SenderFault: false, Code: "InternalError", Message: "try again" }
        ]
      }))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const resolved = yield* SqsConnection.resolve({ endpoint: "http://127.0.0.1:9", region: ElasticMQ.region })
      const info = { destination: "orders", queueName: "orders", url: "http://127.0.0.1:9/000000000000/orders", fifo: false, visibilityTimeoutSeconds: 30, maxReceiveCount: undefined }
      const topology: SqsTopology.SqsTopologyShape = {
        queue: () => Effect.succeed(info),
        counts: () => Effect.succeed({ visible: 0, inFlight: 0, delayed: 0 }),
        purge: () => Effect.void,
        delete: () => Effect.void,
        forget: () => Effect.void
      }
      const { publish, publishEach } = Publish.make({ client, resolved, endpoint: "http://127.0.0.1:9" }, topology)
      const messages = ["a", "b", "c", "d"].map((id) => Envelope.outgoing(encoder.encode(id), { id }))
      const outcomes = yield* publishEach("orders", messages)
      assert.strictEqual(outcomes.length, 4)
      const [ok, invalid, internal, unanswered] = outcomes
      assert.deepStrictEqual(ok, Result.succeed({ id: "a", coordinates: { destination: "orders", offset: "sqs-ok" } }))
      const failure = (o: typeof ok) => {
        assert.isTrue(o !== undefined && Result.isFailure(o))
        return o !== undefined && Result.isFailure(o) ? o.failure : undefined
      }
      assert.strictEqual(failure(invalid)?.reason._tag, "Invalid")
      assert.strictEqual(failure(invalid)?.reason.code, "InvalidParameterValue")
      assert.strictEqual(failure(invalid)?.reason.message, "Message contains invalid characters")
      assert.isFalse(failure(invalid)?.isRetryable)
      assert.strictEqual(failure(internal)?.reason._tag, "Unknown")
      assert.isTrue(failure(internal)?.isRetryable)
      assert.strictEqual(failure(unanswered)?.reason._tag, "Unknown", "an entry SQS did not answer for")
      const error = yield* Effect.flip(publish("orders", messages))
      assert.strictEqual(error.reason._tag, "Invalid", "publish fails with the first refused message")
    }).pipe(Effect.scoped))
})

describe("queue specs", () => {
  const reasonOfResolve = (options: SqsConnection.Options) =>
    Effect.runSync(SqsConnection.resolve(options).pipe(Effect.match({ onFailure: (e) => e.reason, onSuccess: () => undefined })))

  it("out of SQS's bounds is refused when the layer is built, with the queue and the field named (Invalid)", () => {
    const cases: ReadonlyArray<readonly [SqsConnection.Options, string]> = [
      [{ queues: { orders: { delay: "16 minutes" } } }, "queue orders: delay must be between 0 and 900 seconds, got 960"],
      [{ queues: { "orders.fifo": { visibilityTimeout: "13 hours" } } }, "queue orders.fifo: visibilityTimeout must be between 0 and 43200 seconds"],
      [{ defaultQueue: { retention: "10 seconds" } }, "queue (default): retention must be between 60 and 1209600 seconds"],
      [{ queues: { orders: { maxReceiveCount: 0 } } }, "queue orders: maxReceiveCount must be an integer from 1 to 1000"]
    ]
    for (const [options, message] of cases) {
      const reason = reasonOfResolve({ endpoint: "http://127.0.0.1:9324", ...options })
      assert.strictEqual(reason?._tag, "Invalid")
      assert.include(reason?.message ?? "", message)
    }
  })

  it("within the bounds resolves", () => {
    const reason = reasonOfResolve({
      endpoint: "http://127.0.0.1:9324",
      queues: { orders: { delay: "15 minutes", visibilityTimeout: "12 hours", retention: "14 days", maxReceiveCount: 1000 } }
    })
    assert.isUndefined(reason)
  })
})

describe("queue names", () => {
  it("a valid SQS queue name is its own queue; other names are escaped, distinct from each other", () => {
    assert.strictEqual(SqsTopology.queueName("order_events"), "order_events")
    assert.strictEqual(SqsTopology.queueName("billing-in.fifo"), "billing-in.fifo")
    assert.strictEqual(SqsTopology.queueName("orders.dlq"), "orders_ddlq")
    assert.strictEqual(SqsTopology.queueName("a_b.c"), "a_ub_dc")
    assert.strictEqual(SqsTopology.queueName("orders.v1.fifo"), "orders_dv1.fifo")
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ minLength: 1, maxLength: 20 }), (a, b) => {
      const escaped = (s: string) => !/^[A-Za-z0-9_-]+$/.test(s.endsWith(".fifo") ? s.slice(0, -5) : s)
      fc.pre(a !== b && escaped(a) && escaped(b))
      return SqsTopology.queueName(a) !== SqsTopology.queueName(b)
    }))
  })
})

describe("queue URLs", () => {
  const aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
  const elastic = "http://127.0.0.1:9324/000000000000/billing-in.fifo"
  const parsed = (destination: string) => QueueUrl.parse(destination)

  it("a destination with a scheme is a URL; names (dots, colons, slashes without ://) are not", () => {
    for (const url of [aws, elastic, "HTTPS://SQS.example/1/q", "ftp://host/1/q", "https:///1/q"]) assert.isTrue(QueueUrl.isUrl(url), url)
    for (const name of ["orders", "orders.dlq", "sqs.orders.fifo", "urn:orders", "a/b", "https:orders", "1http://x/y"]) {
      assert.isFalse(QueueUrl.isUrl(name), name)
    }
  })

  it("a queue URL is that queue, verbatim: its name is the last path segment, FIFO when it ends .fifo", () => {
    assert.deepStrictEqual(parsed(aws), Result.succeed({ _tag: "Queue", queue: { url: aws, queueName: "orders", fifo: false } } as const))
    assert.deepStrictEqual(
      parsed(elastic),
      Result.succeed({ _tag: "Queue", queue: { url: elastic, queueName: "billing-in.fifo", fifo: true } } as const)
    )
    const vpce = "https://vpce-0a1b-c2d3.sqs.us-east-1.vpce.amazonaws.com/123456789012/order_events"
    assert.deepStrictEqual(parsed(vpce), Result.succeed({ _tag: "Queue", queue: { url: vpce, queueName: "order_events", fifo: false } } as const))
    assert.strictEqual(SqsTopology.queueName(aws), "orders", "never escaped")
    assert.strictEqual(SqsTopology.queueName(elastic), "billing-in.fifo")
  })

  it("<queue URL>.dlq is the dead-letter queue of that queue (its redrive target), FIFO ones too", () => {
    assert.deepStrictEqual(
      parsed(`${aws}.dlq`),
      Result.succeed({ _tag: "DeadLetterOf", source: { url: aws, queueName: "orders", fifo: false } } as const)
    )
    assert.deepStrictEqual(
      parsed(`${elastic}.dlq`),
      Result.succeed({ _tag: "DeadLetterOf", source: { url: elastic, queueName: "billing-in.fifo", fifo: true } } as const)
    )
    assert.strictEqual(SqsTopology.queueName(`${aws}.dlq`), `${aws}.dlq`, "no name without asking SQS")
  })

  it("a malformed URL is refused with what is wrong: scheme, host, credentials, no queue name, a name SQS refuses, a query or fragment", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["ftp://host/123/orders", "not an http(s) URL"],
      ["https://", "not a URL"],
      ["https:///123/orders", "no host"],
      ["https://user:secret@host/123/orders", "no credentials"],
      ["https://sqs.eu-west-1.amazonaws.com", "no queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/", "no queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/", "no queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/orders.v2", "not an SQS queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/bad name", "not an SQS queue name"],
      [`https://sqs.eu-west-1.amazonaws.com/123/${"q".repeat(81)}`, "not an SQS queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/.fifo", "not an SQS queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/orders?Action=x", "no query or fragment"],
      ["https://sqs.eu-west-1.amazonaws.com/123/orders#top", "no query or fragment"],
      ["https://sqs.eu-west-1.amazonaws.com/123/%6Frders", "not an SQS queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123\\orders", "does not end with its queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/ord\ners", "does not end with its queue name"],
      ["https://sqs.eu-west-1.amazonaws.com/123/orders.dlq.dlq", "not an SQS queue name"]
    ]
    for (const [destination, message] of cases) {
      const result = parsed(destination)
      assert.isTrue(Result.isFailure(result), destination)
      if (Result.isFailure(result)) assert.include(result.failure, message, destination)
    }
    assert.isTrue(Result.isSuccess(parsed(`https://h/123/${"q".repeat(80)}`)), "80 characters is SQS's limit")
  })

  it("redrive targets: the queue name of an SQS ARN; its URL beside the source's", () => {
    assert.strictEqual(QueueUrl.queueNameOfArn("arn:aws:sqs:eu-west-1:123456789012:orders-dlq"), "orders-dlq")
    assert.strictEqual(QueueUrl.queueNameOfArn("arn:aws:sqs:elasticmq:000000000000:parked.fifo"), "parked.fifo")
    for (const arn of ["arn:aws:sns:eu-west-1:123:orders", "arn:aws:sqs:eu-west-1:123", "orders", "arn:aws:sqs:r:1:bad.name"]) {
      assert.isUndefined(QueueUrl.queueNameOfArn(arn), arn)
    }
    assert.deepStrictEqual(QueueUrl.siblingUrl({ url: aws, queueName: "orders", fifo: false }, "orders-dlq.fifo"), {
      url: "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-dlq.fifo",
      queueName: "orders-dlq.fifo",
      fifo: true
    })
  })

  it("the region of an AWS queue URL; another than the connection's is a problem (the SDK signs for the connection's)", () => {
    const queue = (url: string) => ({ url, queueName: "q", fifo: false })
    assert.strictEqual(QueueUrl.awsRegionOf(queue(aws)), "eu-west-1")
    assert.strictEqual(QueueUrl.awsRegionOf(queue("https://sqs.cn-north-1.amazonaws.com.cn/1/q")), "cn-north-1")
    assert.strictEqual(QueueUrl.awsRegionOf(queue("https://vpce-0a1b.sqs.us-east-2.vpce.amazonaws.com/1/q")), "us-east-2")
    assert.strictEqual(QueueUrl.awsRegionOf(queue("https://ap-south-1.queue.amazonaws.com/1/q")), "ap-south-1")
    assert.isUndefined(QueueUrl.awsRegionOf(queue(elastic)))
    assert.isUndefined(QueueUrl.awsRegionOf(queue("https://sqs.eu-west-1.amazonaws.com.evil.example/1/q")))
    assert.isUndefined(QueueUrl.regionProblem(queue(aws), "eu-west-1"))
    assert.isUndefined(QueueUrl.regionProblem(queue(aws), undefined), "the SDK's default region is not known here")
    assert.isUndefined(QueueUrl.regionProblem(queue(elastic), "elasticmq"))
    assert.include(QueueUrl.regionProblem(queue(aws), "us-east-1") ?? "", "is in eu-west-1")
  })

  it("a declared spec is compared attribute by attribute with what the queue has", () => {
    const found = QueueUrl.mismatches({ VisibilityTimeout: "60", DelaySeconds: "0", KmsMasterKeyId: "k" }, { VisibilityTimeout: "30", DelaySeconds: "0" })
    assert.deepStrictEqual(found, [
      { attribute: "VisibilityTimeout", declared: "60", actual: "30" },
      { attribute: "KmsMasterKeyId", declared: "k", actual: undefined }
    ])
    assert.strictEqual(QueueUrl.describeMismatches(found), "VisibilityTimeout is \"30\", declared \"60\"; KmsMasterKeyId is not set, declared \"k\"")
    assert.deepStrictEqual(QueueUrl.mismatches({ VisibilityTimeout: "30" }, { VisibilityTimeout: "30", DelaySeconds: "5" }), [])
  })
})
