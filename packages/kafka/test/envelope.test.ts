/**
 * Unit tests (no broker): the outgoing message → Kafka record → envelope round trip (native key and
 * timestamp, as few headers as possible) and the `Errors.Reason` of kafkajs failures (kind, the broker's
 * words, the Kafka error code name).
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { Envelope, Errors, Headers } from "@switchyard/core"
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, type KafkaMessage } from "kafkajs"
import { fromRecord, toRecord } from "../src/internal/envelope.ts"
import { publishError, reasonOf, subscribeError } from "../src/internal/errors.ts"

/** What the broker hands back for a record we sent (kafkajs gives header values as Buffers). */
const asFetched = (record: ReturnType<typeof toRecord>, offset: string): KafkaMessage => ({
  key: record.key === null || record.key === undefined ? null : Buffer.from(record.key),
  value: record.value === null || record.value === undefined ? null : Buffer.from(record.value),
  timestamp: record.timestamp ?? "0",
  attributes: 0,
  offset,
  headers: Object.fromEntries(Object.entries(record.headers ?? {}).map(([k, v]) => [k, Buffer.from(String(v))]))
})

const headerName = fc.string({ minLength: 1, maxLength: 12 }).filter((name) =>
  ![Headers.messageId, Headers.contentType, Headers.correlationId, Headers.causationId].includes(name)
)

const outgoing = fc.record({
  id: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== ""),
  key: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
  headers: fc.dictionary(headerName, fc.string({ maxLength: 20 })),
  timestamp: fc.integer({ min: 1, max: 4_000_000_000_000 }),
  contentType: fc.constantFrom("application/json", "text/plain", "application/octet-stream"),
  payload: fc.uint8Array({ maxLength: 64 }),
  correlationId: fc.option(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() !== ""), { nil: undefined }),
  causationId: fc.option(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() !== ""), { nil: undefined })
})

describe("kafka envelope: header mapping", () => {
  it("round trip: every field comes back; key and timestamp are native, only what Kafka lacks is a header", () => {
    fc.assert(
      fc.property(outgoing, fc.nat({ max: 7 }), (message: Envelope.OutgoingMessage, partition) => {
        const record = toRecord(message, partition)
        assert.strictEqual(record.key, message.key ?? null)
        assert.strictEqual(record.timestamp, String(message.timestamp))
        const names = Object.keys(record.headers ?? {})
        assert.strictEqual(names.includes(Headers.contentType), message.contentType !== "application/octet-stream")
        assert.strictEqual(names.includes(Headers.correlationId), message.correlationId !== undefined)
        assert.strictEqual(names.length, Object.keys(message.headers).length + 1 + (names.includes(Headers.contentType) ? 1 : 0) +
          (message.correlationId !== undefined ? 1 : 0) + (message.causationId !== undefined ? 1 : 0))
        const envelope = fromRecord("t", partition, asFetched(record, "5"), 1, () => 0)
        assert.strictEqual(envelope.id, message.id)
        assert.strictEqual(envelope.idSource, "message")
        assert.strictEqual(envelope.key, message.key)
        assert.strictEqual(envelope.timestamp, message.timestamp)
        assert.strictEqual(envelope.contentType, message.contentType)
        assert.strictEqual(envelope.correlationId, message.correlationId)
        assert.strictEqual(envelope.causationId, message.causationId)
        assert.deepStrictEqual(envelope.headers, message.headers)
        assert.deepStrictEqual([...envelope.payload], [...message.payload])
        assert.deepStrictEqual(envelope.coordinates, { destination: "t", lane: String(partition), partition, offset: "5" })
      }),
      { numRuns: 300 }
    )
  })

  it("headers named like Object.prototype members stay headers; keys: text (a BOM kept) or exact bytes", () => {
    const fetched = (key: Buffer | null, headers: Record<string, Buffer>): KafkaMessage => ({
      key,
      value: Buffer.from("x"),
      timestamp: "1",
      attributes: 0,
      offset: "0",
      headers
    })
    const raw = JSON.parse(`{"__proto__":"p","constructor":"c","toString":"s"}`) as Record<string, string>
    const headers = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Buffer.from(v)]))
    const envelope = fromRecord("t", 0, fetched(Buffer.from("\uFEFFkey"), headers), 1, () => 0)
    assert.deepStrictEqual(Object.entries(envelope.headers), [["__proto__", "p"], ["constructor", "c"], ["toString", "s"]])
    assert.strictEqual(Object.getPrototypeOf(envelope.headers), Object.prototype)
    assert.strictEqual(envelope.key, "\uFEFFkey")
    assert.strictEqual(envelope.keyBytes, undefined)
    const binary = fromRecord("t", 0, fetched(Buffer.from([0, 0, 0, 0, 0, 0, 0xff, 0xfe]), {}), 1, () => 0)
    assert.deepStrictEqual([...binary.keyBytes!], [0, 0, 0, 0, 0, 0, 0xff, 0xfe])
    assert.strictEqual(binary.key, new TextDecoder().decode(new Uint8Array([0, 0, 0, 0, 0, 0, 0xff, 0xfe])))
  })
})

const protocolError = (type: string, code: number, message: string, retriable = false) =>
  new KafkaJSProtocolError(Object.assign(new Error(message), { type, code, retriable }))

describe("kafka errors: Errors.Reason", () => {
  it("keeps the broker's words and the Kafka error code name; the kind decides retryability", () => {
    const tooLarge = reasonOf(protocolError("MESSAGE_TOO_LARGE", 10, "The request included a message larger than the max message size"))
    assert.strictEqual(tooLarge._tag, "TooLarge")
    assert.strictEqual(tooLarge.code, "MESSAGE_TOO_LARGE")
    assert.include(tooLarge.message, "larger than the max message size")
    assert.isFalse(tooLarge.isRetryable)
    const refused = new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:1", { broker: "127.0.0.1:1" })
    const unreachable = reasonOf(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 100 }), "producer connect failed")
    assert.strictEqual(unreachable._tag, "Unreachable")
    assert.isTrue(unreachable.isRetryable)
    assert.match(unreachable.message, /^producer connect failed: .*ECONNREFUSED/)
    const exists = reasonOf(protocolError("TOPIC_ALREADY_EXISTS", 36, "Topic with this name already exists"))
    assert.strictEqual(exists._tag, "TopologyConflict")
    const retriable = reasonOf(protocolError("NOT_LEADER_OR_FOLLOWER", 6, "not the leader", true))
    assert.strictEqual(retriable._tag, "Unknown")
    assert.strictEqual(retriable.code, "NOT_LEADER_OR_FOLLOWER")
    assert.isTrue(retriable.isRetryable)
    const socket = reasonOf(Object.assign(new Error("getaddrinfo ENOTFOUND kafka"), { code: "ENOTFOUND" }))
    assert.strictEqual(socket._tag, "Unreachable")
    assert.strictEqual(socket.code, "ENOTFOUND")
  })

  it("an error that already carries a reason keeps it (kind, words and code) through publishError / subscribeError", () => {
    const inner = new Errors.PublishError({ destination: "x", reason: Errors.reason("Invalid", "bad header", "INVALID_RECORD") })
    const outer = subscribeError("orders", inner)
    assert.strictEqual(outer.kind, "Invalid")
    assert.strictEqual(outer.reason.code, "INVALID_RECORD")
    assert.include(outer.reason.message, "bad header")
    const published = publishError("orders", protocolError("INVALID_TIMESTAMP", 32, "timestamp out of range"))
    assert.strictEqual(published.kind, "Invalid")
    assert.strictEqual(published.reason.code, "INVALID_TIMESTAMP")
    assert.strictEqual(published.destination, "orders")
  })
})
