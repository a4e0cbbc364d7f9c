/**
 * Unit tests (no broker) of the record mapping, the error classification and the commit-metadata codec.
 */
import { assert, describe, it } from "@effect/vitest"
import { Envelope, Errors } from "@switchyard/core"
import {
  KafkaJSConnectionError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSSASLAuthenticationError,
  type IHeaders,
  type KafkaMessage
} from "kafkajs"
import { fromRecord, keyOf, toRecord } from "../src/internal/envelope.ts"
import { KafkaTopologyError } from "../src/KafkaTopology.ts"
import { kindOf, messageOf } from "../src/internal/errors.ts"
import { decodeAcked, encodeAcked, maxMetadataLength } from "../src/internal/offsets.ts"

/** What Java's `LongSerializer` writes: 8 big-endian bytes. */
const longKey = (value: bigint): Buffer => {
  const buffer = Buffer.alloc(8)
  buffer.writeBigInt64BE(value)
  return buffer
}

const record = (fields: { key?: Buffer | null; offset?: string; timestamp?: string; headers?: IHeaders }): KafkaMessage => ({
  key: fields.key ?? null,
  value: Buffer.from("{}"),
  timestamp: fields.timestamp ?? "1700000000000",
  attributes: 0,
  offset: fields.offset ?? "7",
  headers: fields.headers ?? {}
})

const protocolError = (type: string, code: number, message: string) =>
  new KafkaJSProtocolError(Object.assign(new Error(message), { type, code, retriable: false }))

describe("kafka codec: keys", () => {
  it("a key that is not UTF-8 (Java LongSerializer) keeps its exact bytes; a text key stays text", () => {
    for (const value of [-1n, -9_223_372_036_854_775_807n, 0x7fed_cba9_8765_4321n]) {
      const raw = longKey(value)
      const { key, keyBytes } = keyOf(raw)
      assert.deepStrictEqual(keyBytes, Uint8Array.from(raw), `exact bytes of ${value}`)
      assert.isString(key, "a lossy text form for logs and lanes")
    }
    // small longs are valid UTF-8 (NULs and ASCII): they round-trip as text
    const small = keyOf(longKey(42n))
    assert.strictEqual(small.keyBytes, undefined)
    assert.deepStrictEqual(Buffer.from(small.key!), longKey(42n))
    for (const text of ["customer-7", "é€😀", "\uFEFFbom-first", ""]) {
      const got = keyOf(Buffer.from(text))
      assert.strictEqual(got.key, text)
      assert.strictEqual(got.keyBytes, undefined)
    }
    assert.deepStrictEqual(keyOf(null), { key: undefined, keyBytes: undefined })
  })

  it("received and sent again, a binary key is the same bytes (keyBytes wins over key)", () => {
    const raw = longKey(-2n)
    const envelope = fromRecord("orders", 3, record({ key: raw }), 1, () => 0)
    const again = toRecord(envelope, 3)
    assert.isTrue(Buffer.isBuffer(again.key))
    assert.deepStrictEqual(again.key, raw)
    // a text key is sent as text
    const text = toRecord(Envelope.outgoing(new Uint8Array(0), { key: "k-1" }), 0)
    assert.strictEqual(text.key, "k-1")
    // keyBytes set by hand wins over key
    const both = toRecord({ ...Envelope.outgoing(new Uint8Array(0), { key: "lossy" }), keyBytes: Uint8Array.of(0xff, 0) }, 0)
    assert.deepStrictEqual(both.key, Buffer.from([0xff, 0]))
  })
})

describe("kafka codec: envelopes through IncomingEnvelope.finish", () => {
  it("a record without Switchyard headers gets its coordinates as a stable id and the record time", () => {
    const envelope = fromRecord("orders", 2, record({ offset: "41", headers: {} }), 1, () => 5)
    assert.strictEqual(envelope.id, "orders/2/41")
    assert.strictEqual(envelope.idSource, "broker")
    assert.strictEqual(envelope.timestamp, 1_700_000_000_000)
    assert.strictEqual(envelope.contentType, "application/octet-stream")
    assert.deepStrictEqual(envelope.coordinates, { destination: "orders", lane: "2", partition: 2, offset: "41" })
  })

  it("garbage metadata falls back: empty id and content type, empty correlation id, implausible timestamp", () => {
    const envelope = fromRecord(
      "orders",
      0,
      record({
        timestamp: "-1",
        headers: { "x-switchyard-id": "", "content-type": "", "x-switchyard-correlation-id": "", other: Buffer.from("v") }
      }),
      3,
      () => 1234
    )
    assert.strictEqual(envelope.id, "orders/0/7")
    assert.strictEqual(envelope.contentType, "application/octet-stream")
    assert.strictEqual(envelope.correlationId, undefined)
    assert.strictEqual(envelope.timestamp, 1234, "the Clock's time when the record's is not plausible")
    assert.strictEqual(envelope.attempt, 3)
    assert.deepStrictEqual(envelope.headers, { other: "v" })
  })
})

describe("kafka error classification", () => {
  it("classifies by kafkajs error class and protocol type, keeping the broker's words", () => {
    const tooLarge = protocolError("MESSAGE_TOO_LARGE", 10, "The request included a message larger than the max message size")
    assert.strictEqual(kindOf(tooLarge), "TooLarge")
    assert.strictEqual(kindOf(protocolError("RECORD_LIST_TOO_LARGE", 18, "too big")), "TooLarge")
    assert.strictEqual(kindOf(protocolError("INVALID_RECORD", 87, "invalid record")), "Invalid")
    assert.strictEqual(kindOf(protocolError("TOPIC_AUTHORIZATION_FAILED", 29, "Not authorized")), "AuthorizationFailed")
    assert.strictEqual(kindOf(protocolError("SASL_AUTHENTICATION_FAILED", 58, "bad creds")), "AuthenticationFailed")
    // (the real one, with the broker's words, is checked against the SASL listener in kafka.test.ts)
    // (its declared constructor takes no message, the real one does)
    const sasl: unknown = Reflect.construct(KafkaJSSASLAuthenticationError, ["SASL PLAIN authentication failed: bad creds"])
    assert.strictEqual(kindOf(sasl), "AuthenticationFailed")
    assert.include(messageOf(sasl), "bad creds")
    const refused = new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:1", { broker: "127.0.0.1:1" })
    assert.strictEqual(kindOf(refused), "Unreachable")
    // wrapped by the retrier: the inner error decides, and its words are kept
    const wrapped = new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 100 })
    assert.strictEqual(kindOf(wrapped), "Unreachable")
    assert.include(messageOf(wrapped), "ECONNREFUSED")
    assert.strictEqual(kindOf(new KafkaJSNumberOfRetriesExceeded(tooLarge, { retryCount: 0, retryTime: 0 })), "TooLarge")
    assert.strictEqual(kindOf(new Error("something else")), "Unknown")
    assert.strictEqual(kindOf(new KafkaTopologyError({ operation: "describe", reason: Errors.reason("NotFound", "unknown topic t") })), "NotFound")
    assert.strictEqual(kindOf(new TypeError("header value must be a string")), "Invalid")
  })
})

describe("kafka commit metadata", () => {
  it("round-trips acked offsets above the commit as ranges, ignoring garbage", () => {
    const acked = [101, 102, 103, 110, 200, 201]
    const text = encodeAcked(100, acked)
    assert.strictEqual(text, "sy1:1-3,a,2s-2t")
    assert.deepStrictEqual([...decodeAcked(100, text)], acked)
    assert.strictEqual(encodeAcked(100, []), "")
    assert.strictEqual(encodeAcked(100, [99, 100]), "", "at or below the commit: nothing to say")
    for (const garbage of [null, "", "hello", "sy1:", "sy1:-3", "sy1:3-1", "sy1:z!", "sy1:5,2"]) {
      assert.strictEqual(decodeAcked(100, garbage).size, 0, String(garbage))
    }
  })

  it("stays under the broker's metadata limit by leaving out the highest offsets", () => {
    const sparse = Array.from({ length: 5000 }, (_, i) => 1000 + i * 2)
    const text = encodeAcked(999, sparse)
    assert.isAtMost(text.length, maxMetadataLength)
    const decoded = [...decodeAcked(999, text)]
    assert.isAbove(decoded.length, 100)
    assert.deepStrictEqual(decoded, sparse.slice(0, decoded.length), "a prefix of the acked offsets, lowest first")
  })
})
