/**
 * The one header mapping on real messages from the server: an outgoing message published with its NATS
 * headers (core NATS and JetStream) is read back as the same envelope (its header block read from the bytes
 * nats.js keeps: see headerBlock.ts).
 */
import { AckPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect, headers, type Msg, type NatsConnection } from "@nats-io/transport-node"
import { Envelope } from "@switchyard/core"
import * as fc from "fast-check"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { fromMessage, toHeaders } from "../src/internal/envelope.ts"
import { rawBlock } from "../src/internal/headerBlock.ts"
import { outgoingMessage } from "./arbitraries.ts"
import { servers, unique } from "./helpers.ts"

let nc: NatsConnection

beforeAll(async () => {
  nc = await connect({ servers, name: "switchyard-nats-envelope-test" })
})
afterAll(async () => {
  await nc.drain()
})

/** Publishes one message and returns it as received. */
const roundTrip = (subject: string, m: Envelope.OutgoingMessage) =>
  new Promise<Msg>((resolve, reject) => {
    nc.subscribe(subject, { max: 1, callback: (err, received) => (err === null ? resolve(received) : reject(err)) })
    nc.publish(subject, m.payload, { headers: toHeaders(m) })
  })

const now = () => 1_700_000_000_000

describe("envelope over the wire", () => {
  it("an outgoing message (any headers, ids, keys, values with CR/LF, padding, unicode) reads back as itself", async () => {
    const subject = unique("sy.envelope")
    await fc.assert(
      fc.asyncProperty(outgoingMessage, async (sent) => {
        const m = await roundTrip(subject, sent)
        // nats.js as installed keeps the received block where headerBlock.ts reads it (its cheaper path is taken)
        assert.isDefined(rawBlock(m))
        const { attempt, coordinates, idSource, keyBytes, ...rest } = fromMessage(m, { attempt: 1, coordinates: { destination: subject } }, now)
        assert.strictEqual(idSource, "message")
        assert.isUndefined(keyBytes)
        assert.strictEqual(attempt, 1)
        assert.strictEqual(coordinates.destination, subject)
        const { dedupId: _, ...expected } = sent
        assert.deepStrictEqual({ ...rest, payload: Array.from(rest.payload) }, { ...expected, payload: Array.from(sent.payload) })
      }),
      { numRuns: 150 }
    )
  })

  it("a JetStream message: id from Nats-Msg-Id, attempt from the delivery count, the stored time, stream/sequence", async () => {
    const jsm = await jetstreamManager(nc)
    const stream = unique("SY_ENVELOPE").replace(/[^A-Za-z0-9_-]/g, "_")
    const subject = unique("sy.envelope.js")
    await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.Memory })
    try {
      const js = jetstream(nc)
      await js.publish(subject, new Uint8Array([4]), { msgID: "js-1" })
      const h = headers()
      h.append("x-custom", "v")
      await js.publish(subject, new Uint8Array([5]), { headers: h })
      await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit })
      const consumer = await js.consumers.get(stream, "reader")
      const read = async () => {
        const m = await consumer.next({ expires: 5_000 })
        assert.isNotNull(m)
        return m!
      }
      const first = await read()
      const origin = (msg: typeof first) => ({
        attempt: msg.info.deliveryCount,
        coordinates: { destination: subject, sequence: msg.seq },
        stream,
        brokerTimestamp: msg.time.getTime()
      })
      // the JsMsg wraps a Msg whose received block headerBlock.ts reads
      assert.isDefined(rawBlock(first))
      const withId = fromMessage(first, origin(first), now)
      assert.strictEqual(withId.id, "js-1")
      assert.strictEqual(withId.idSource, "message")
      assert.strictEqual(withId.attempt, 1)
      assert.strictEqual(withId.timestamp, first.time.getTime())
      first.ack()
      const second = await read()
      const withoutId = fromMessage(second, origin(second), now)
      assert.strictEqual(withoutId.id, `${stream}/2`)
      assert.strictEqual(withoutId.idSource, "broker")
      assert.deepStrictEqual(withoutId.headers, { "x-custom": "v" })
      second.nak()
      const again = await read()
      assert.strictEqual(fromMessage(again, origin(again), now).attempt, 2)
      again.ack()
    } finally {
      await jsm.streams.delete(stream)
    }
  })
})
