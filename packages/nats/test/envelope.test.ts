/**
 * The consume path reads an envelope straight from a message's raw header block instead of through
 * nats.js's header object. These tests pin that shortcut to the public API: on real messages from the
 * server both must read every header set identically, and the shortcut must actually be taken (so an
 * upgrade of nats.js that moves its internals shows up here, not as a silent slowdown).
 */
import { AckPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect, headers, type Msg, type NatsConnection } from "@nats-io/transport-node"
import * as fc from "fast-check"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import type { Envelope } from "@switchyard/core"
import { coreOrigin, decodeValue, fromHeaders, fromMessage, headerBlock, lastHeader } from "../src/internal/envelope.ts"
import { servers, unique } from "./helpers.ts"

let nc: NatsConnection

beforeAll(async () => {
  nc = await connect({ servers, name: "switchyard-nats-envelope-test" })
})
afterAll(async () => {
  await nc.drain()
})

/** Publishes one message with these headers and returns it as received. */
const roundTrip = (subject: string, pairs: ReadonlyArray<readonly [string, string]>, body: Uint8Array) =>
  new Promise<Msg>((resolve, reject) => {
    const sub = nc.subscribe(subject, {
      max: 1,
      callback: (err, m) => (err === null ? resolve(m) : reject(err))
    })
    void sub
    if (pairs.length === 0) {
      nc.publish(subject, body)
    } else {
      const h = headers()
      for (const [name, value] of pairs) h.append(name, value)
      nc.publish(subject, body, { headers: h })
    }
  })

// Header names as NATS accepts them (printable ASCII but ':'), some of them the reserved envelope names.
const headerName = fc.oneof(
  fc.stringMatching(/^[!-9;-~]{1,12}$/),
  fc.constantFrom(
    "x-switchyard-id",
    "x-switchyard-key",
    "x-switchyard-timestamp",
    "content-type",
    "x-switchyard-correlation-id",
    "x-switchyard-causation-id",
    "Nats-Msg-Id",
    "X-Switchyard-Id",
    "Content-Type",
    "X-Switchyard-Timestamp",
    "X-Switchyard-Key"
  )
)
// Values: anything without CR/LF, with spaces (trimmed by NATS), unicode and the base64 marker.
const headerValue = fc.oneof(
  fc.string({ maxLength: 20 }).filter((s) => !/[\r\n]/.test(s)),
  fc.string({ unit: "grapheme", maxLength: 8 }).filter((s) => !/[\r\n]/.test(s)),
  fc.constant("  padded value  "),
  fc.constant("=?sy-b64?aGVsbG8Kd29ybGQ="),
  fc.constant("a: b: c")
)

/** A fixed receipt time, so both readings of one message agree. */
const now = () => 1_700_000_000_000

/** An envelope with a generated id compared without it (each reading draws a fresh one). */
const comparable = (e: Envelope.Envelope) => e.idSource === "generated" ? { ...e, id: "<generated>" } : e

describe("envelope from a raw header block", () => {
  it("reads every header set (whole, and one header at a time) exactly as nats.js's public header API does", async () => {
    const subject = unique("sy.envelope")
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 }),
        fc.uint8Array({ maxLength: 64 }),
        async (pairs, body) => {
          const m = await roundTrip(subject, pairs, body)
          const fast = fromMessage(m, 1, { destination: subject }, coreOrigin, now)
          const slow = fromHeaders(m.data, m.headers, 1, { destination: subject }, coreOrigin, now)
          assert.deepStrictEqual(comparable(fast), comparable(slow))
          assert.notStrictEqual(fast.id, "")
          assert.deepStrictEqual([...fast.payload], [...body])
          for (const name of [...pairs.map(([n]) => n), "x-absent"]) {
            const h = m.headers
            const expected = h !== undefined && h.has(name) ? decodeValue(h.last(name)) : undefined
            assert.strictEqual(lastHeader(m, name), expected, name)
          }
        }
      ),
      { numRuns: 150 }
    )
  })

  it("takes the shortcut on core and JetStream messages, and falls back without nats.js internals", async () => {
    const subject = unique("sy.envelope.shortcut")
    const withHeaders = await roundTrip(subject, [["x-switchyard-id", "m-1"]], new Uint8Array([1]))
    assert.instanceOf(headerBlock(withHeaders), Uint8Array)
    const bare = await roundTrip(subject, [], new Uint8Array([2]))
    assert.strictEqual(headerBlock(bare), "none")
    const bareEnvelope = fromMessage(bare, 1, { destination: subject }, coreOrigin, now)
    assert.strictEqual(bareEnvelope.idSource, "generated")
    assert.notStrictEqual(bareEnvelope.id, "")

    const h = headers()
    h.append("x-switchyard-id", "plain")
    const plain = { data: new Uint8Array([3]), headers: h }
    assert.isUndefined(headerBlock(plain))
    assert.strictEqual(fromMessage(plain, 1, { destination: subject }, coreOrigin, now).id, "plain")

    const jsm = await jetstreamManager(nc)
    const stream = unique("SY_ENVELOPE").replace(/[^A-Za-z0-9_-]/g, "_")
    const jsSubject = unique("sy.envelope.js")
    await jsm.streams.add({ name: stream, subjects: [jsSubject], storage: StorageType.Memory })
    try {
      const js = jetstream(nc)
      await js.publish(jsSubject, new Uint8Array([4]), { msgID: "js-1", headers: h })
      await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit })
      const consumer = await js.consumers.get(stream, "reader")
      const m = await consumer.next({ expires: 5_000 })
      assert.isNotNull(m)
      if (m === null) return
      assert.instanceOf(headerBlock(m), Uint8Array)
      const origin = { stream, brokerTimestamp: Math.floor(m.info.timestampNanos / 1e6) }
      const envelope = fromMessage(m, m.info.deliveryCount, { destination: jsSubject, sequence: m.seq }, origin, now)
      assert.strictEqual(envelope.id, "plain")
      assert.strictEqual(envelope.attempt, 1)
      assert.deepStrictEqual(
        envelope,
        fromHeaders(m.data, m.headers, 1, { destination: jsSubject, sequence: m.seq }, origin, now)
      )
      m.ack()
    } finally {
      await jsm.streams.delete(stream)
    }
  })
})
