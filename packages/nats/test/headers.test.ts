/**
 * The header mapping without a broker: an `OutgoingMessage` → NATS headers → `Draft` → envelope round trip
 * (fast-check), the precedence of ids and names on messages Switchyard did not write, and the reading of a
 * received header block without nats.js's decode (the same envelope as nats.js's headers give, for any block).
 */
import { headers as makeHeaders, MsgHdrsImpl } from "@nats-io/transport-node"
import { Envelope, Headers as H } from "@switchyard/core"
import { outgoingMessage, text } from "./arbitraries.ts"
import * as fc from "fast-check"
import { assert, describe, it } from "vitest"
import { decodeValue, encodeValue, fromMessage, natsMsgId, type Origin, toHeaders, wireHeaders } from "../src/internal/envelope.ts"
import { eachHeader, rawBlock } from "../src/internal/headerBlock.ts"

const now = () => 1_700_000_000_000
const origin: Origin = { attempt: 1, coordinates: { destination: "orders" } }

const readBack = (pairs: ReadonlyArray<readonly [string, string]>, extra: Partial<Origin> = {}) => {
  const h = makeHeaders()
  for (const [name, value] of pairs) h.append(name, value)
  return fromMessage({ data: new Uint8Array(), headers: h }, { ...origin, ...extra }, now)
}

describe("NATS header mapping", () => {
  it("round-trips every outgoing message (envelope fields, user headers, dedupId) through the headers", () => {
    fc.assert(
      fc.property(outgoingMessage, (sent) => {
        const h = toHeaders(sent)
        assert.strictEqual(decodeValue(h.last(natsMsgId)), sent.dedupId ?? sent.id)
        const { attempt, coordinates, idSource, keyBytes, ...rest } = fromMessage({ data: sent.payload, headers: h }, origin, now)
        const { dedupId: _, ...expected } = sent
        assert.deepStrictEqual(rest, expected)
        assert.strictEqual(idSource, "message")
        assert.strictEqual(attempt, 1)
      }),
      { numRuns: 500 }
    )
  })

  it("what toHeaders builds round-trips through nats.js's wire encoding, as append-built headers do", () => {
    fc.assert(
      fc.property(outgoingMessage, (sent) => {
        const h = toHeaders(sent)
        assert.instanceOf(h, MsgHdrsImpl)
        const appended = makeHeaders()
        for (const [name, values] of h) for (const value of values) appended.append(name, value)
        const wire = (h as MsgHdrsImpl).encode()
        assert.deepStrictEqual(wire, (appended as MsgHdrsImpl).encode())
        const { attempt: _a, ...back } = fromMessage({ data: sent.payload, headers: MsgHdrsImpl.decode(wire) }, origin, now)
        const { attempt: _b, ...direct } = fromMessage({ data: sent.payload, headers: h }, origin, now)
        assert.deepStrictEqual(back, direct)
      }),
      { numRuns: 300 }
    )
  })

  it("what the publish paths send is the block toHeaders' map encodes to, byte for byte; headers added to it are sent beside", () => {
    fc.assert(
      fc.property(outgoingMessage, (sent) => {
        const expected = (toHeaders(sent) as MsgHdrsImpl).encode()
        assert.deepStrictEqual((wireHeaders(sent) as MsgHdrsImpl).encode(), expected)
        // as JetStream's publish does for its options (expected stream, TTL…)
        const added = wireHeaders(sent)
        added.set("Nats-Expected-Stream", "ORDERS")
        const decoded = MsgHdrsImpl.decode((added as MsgHdrsImpl).encode())
        assert.strictEqual(decoded.get("Nats-Expected-Stream"), "ORDERS")
        for (const [name, values] of toHeaders(sent)) assert.deepStrictEqual(decoded.values(name), values.map((v) => v.trim()))
      }),
      { numRuns: 300 }
    )
  })

  it("a user header name nats.js refuses is refused with nats.js's own error", () => {
    for (const name of ["bad name", "colon:", "tab\t", "é"]) {
      const m = Envelope.outgoing(new Uint8Array(), { id: "m-1", headers: { [name]: "v" } })
      assert.throws(() => toHeaders(m), /not a valid character in a header name/)
      assert.throws(() => wireHeaders(m), /not a valid character in a header name/)
      assert.throws(() => makeHeaders().append(name, "v"), /not a valid character in a header name/)
    }
  })

  it("every value survives encoding, and what needs none is sent as is", () => {
    fc.assert(fc.property(text, (value) => {
      assert.strictEqual(decodeValue(encodeValue(value)), value)
      const plain = !/[\r\n]/.test(value) && !value.startsWith("=?sy-b64?") && value.trim() === value
      assert.strictEqual(encodeValue(value) === value, plain)
    }))
  })

  it("the id: x-switchyard-id, then X-Switchyard-Id, then Nats-Msg-Id; blank ones skipped; else stream/sequence", () => {
    assert.strictEqual(readBack([[natsMsgId, "native"]]).id, "native")
    assert.strictEqual(readBack([[natsMsgId, "native"], ["X-Switchyard-Id", "canonical"]]).id, "canonical")
    assert.strictEqual(readBack([["X-Switchyard-Id", "canonical"], [H.messageId, "exact"], [natsMsgId, "n"]]).id, "exact")
    assert.strictEqual(readBack([[H.messageId, " "], [natsMsgId, "native"]]).id, "native")
    const fallback = readBack([[H.messageId, " "]], { stream: "ORDERS", coordinates: { destination: "orders", sequence: 7 } })
    assert.strictEqual(fallback.id, "ORDERS/7")
    assert.strictEqual(fallback.idSource, "broker")
    assert.strictEqual(readBack([]).idSource, "generated")
  })

  it("exact names win over canonical spellings whatever the order; other names are user headers", () => {
    const e = readBack([
      ["Content-Type", "text/x-canonical"],
      [H.contentType, "application/json"],
      ["X-Switchyard-Key", "canonical-key"],
      ["X-Switchyard-Timestamp", "1700000000123"],
      ["Mixed-Case", "kept"]
    ])
    assert.strictEqual(e.contentType, "application/json")
    assert.strictEqual(e.key, "canonical-key")
    assert.strictEqual(e.timestamp, 1_700_000_000_123)
    assert.deepStrictEqual(e.headers, { "Mixed-Case": "kept" })
  })

  it("user headers named like the envelope's are not sent twice", () => {
    const m = Envelope.outgoing(new Uint8Array(), { id: "m-1", headers: { [H.messageId]: "forged", [natsMsgId]: "forged", "x-ok": "1" } })
    const h = toHeaders(m)
    assert.deepStrictEqual(h.values(natsMsgId), ["m-1"])
    assert.isFalse(h.has(H.messageId))
    assert.strictEqual(readBack([...h].flatMap(([n, vs]) => vs.map((v) => [n, v] as const))).id, "m-1")
  })
})

// --- Reading a received header block without nats.js's decode (headerBlock.ts) -----------------------

/** A message as nats.js's `MsgImpl` holds it: the received bytes, the header block's length, nothing decoded yet. */
const received = (block: Uint8Array, payload: Uint8Array) => {
  const rdata = new Uint8Array(block.length + payload.length)
  rdata.set(block)
  rdata.set(payload, block.length)
  return {
    _rdata: rdata,
    _msg: { hdr: block.length },
    _headers: undefined,
    get data() {
      return rdata.subarray(block.length)
    },
    // nats.js's own reading of the same bytes (its getter decodes lazily, and throws what decode throws)
    get headers() {
      return MsgHdrsImpl.decode(rdata.subarray(0, block.length))
    }
  }
}

const headerName = fc.oneof(
  fc.constantFrom(H.messageId, "X-Switchyard-Id", natsMsgId, H.timestamp, "X-Switchyard-Timestamp", H.contentType, "Content-Type", H.key),
  fc.constantFrom(H.correlationId, "X-Switchyard-Causation-Id", "x-custom", "__proto__", "constructor", "", "bad name", "tab\t", "é"),
  fc.string({ unit: fc.constantFrom("a", "B", "-", "_", ".", "1"), maxLength: 8 })
)
const headerValue = fc.oneof(
  text,
  fc.constantFrom("", "  padded  ", "1700000000123", "=?sy-b64?aGk=", "x\ry", "x\ny", "v\r", "ü ✓"),
  fc.string({ maxLength: 6 })
)
const line = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(headerName, headerValue).map(([name, value]) => `${name}:${value}`) },
  { weight: 3, arbitrary: fc.tuple(headerName, headerValue).map(([name, value]) => `${name}: ${value}`) },
  { weight: 1, arbitrary: fc.constantFrom("", "no colon here", ":", "a:b:c", " leading: space") }
)
const firstLine = fc.constantFrom("NATS/1.0", "NATS/1.0", "NATS/1.0", "NATS/1.0 503", "NATS/1.0 408 Request Timeout", "NATS/1.0 ", "NATS/2.0")
const headerBlock = fc.oneof(
  { weight: 9, arbitrary: fc.tuple(firstLine, fc.array(line, { maxLength: 8 })).map(([first, lines]) => new TextEncoder().encode(`${[first, ...lines].join("\r\n")}\r\n\r\n`)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }) }
)

/** The envelope, or the error nats.js's reading throws. */
const attempt = (read: () => Envelope.Envelope) => {
  try {
    return { envelope: read() }
  } catch (error) {
    return { error: String(error) }
  }
}

describe("a received header block read without nats.js's decode", () => {
  const jsOrigin: Origin = { attempt: 2, stream: "ORDERS", coordinates: { destination: "orders", sequence: 9 } }

  it("gives the envelope nats.js's decoded headers give (or the same error), for any block", () => {
    fc.assert(
      fc.property(headerBlock, fc.uint8Array({ maxLength: 8 }), (block, payload) => {
        const msg = received(block, payload)
        const fast = attempt(() => fromMessage(msg, jsOrigin, now))
        const viaNats = attempt(() => fromMessage({ data: msg.data, headers: msg.headers }, jsOrigin, now))
        assert.deepStrictEqual(fast, viaNats)
      }),
      { numRuns: 3_000 }
    )
  })

  it("reads the block itself when nats.js has not decoded it, and only then", () => {
    const block = toHeaders(Envelope.outgoing(new Uint8Array([1]), { id: "m-1", headers: { "x-a": "1" } })) as MsgHdrsImpl
    const msg = received(block.encode(), new Uint8Array([1]))
    assert.isDefined(rawBlock(msg))
    assert.isUndefined(rawBlock({ ...msg, _headers: block }), "decoded already: its headers are read")
    assert.isUndefined(rawBlock({ data: msg.data, headers: block }), "not a MsgImpl: its headers are read")
    assert.isDefined(rawBlock({ msg, info: {} }), "a JetStream message: the Msg it wraps")
    assert.isUndefined(rawBlock({ ...msg, _msg: { hdr: -1 } }), "no header block")
    assert.isFalse(eachHeader(new TextEncoder().encode("NATS/1.0 503\r\n\r\n"), () => {}), "a status line: nats.js reads it")
  })

  it("headers named __proto__ or constructor are kept as headers (both ways of reading)", () => {
    const block = new TextEncoder().encode(`NATS/1.0\r\n__proto__: x\r\nconstructor: y\r\n\r\n`)
    const fast = fromMessage(received(block, new Uint8Array()), jsOrigin, now)
    assert.strictEqual(Object.getOwnPropertyDescriptor(fast.headers, "__proto__")?.value, "x")
    assert.strictEqual(Object.getOwnPropertyDescriptor(fast.headers, "constructor")?.value, "y")
    assert.deepStrictEqual(fast, fromMessage({ data: new Uint8Array(), headers: MsgHdrsImpl.decode(block) }, jsOrigin, now))
  })
})
