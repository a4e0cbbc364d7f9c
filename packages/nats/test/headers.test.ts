/**
 * The header mapping without a broker: an `OutgoingMessage` → NATS headers → `Draft` → envelope round trip
 * (fast-check), and the precedence of ids and names on messages Switchyard did not write.
 */
import { headers as makeHeaders, MsgHdrsImpl } from "@nats-io/transport-node"
import { Envelope, Headers as H } from "@switchyard/core"
import { outgoingMessage, text } from "./arbitraries.ts"
import * as fc from "fast-check"
import { assert, describe, it } from "vitest"
import { decodeValue, encodeValue, fromMessage, natsMsgId, type Origin, toHeaders } from "../src/internal/envelope.ts"

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

  it("a user header name nats.js refuses is refused with nats.js's own error", () => {
    for (const name of ["bad name", "colon:", "tab\t", "é"]) {
      const m = Envelope.outgoing(new Uint8Array(), { id: "m-1", headers: { [name]: "v" } })
      assert.throws(() => toHeaders(m), /not a valid character in a header name/)
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
