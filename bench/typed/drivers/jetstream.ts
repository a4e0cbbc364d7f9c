/**
 * NATS JetStream. Switchyard: `NatsBroker.layer({ connection, defaultStream: { storage: "memory" } })` (the
 * adapter provisions the stream on first use, during the warm-up). Raw: nats.js — a memory stream created
 * before the worker starts; `js.publish(subject, payload, { msgID })` awaited per message (the PubAck) or
 * per batch (`Promise.all`, pipelined like the adapter); a durable pull consumer (explicit ack,
 * `max_ack_pending` = prefetch, `consume({ max_messages: prefetch })`), `m.ack()` after the handler.
 * Broker-side check: the stream holds exactly what the worker published; for pipelines the consumer has
 * nothing pending and nothing unacked.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { NatsBroker } from "@switchyard/nats"
import { rawEncode } from "../common.ts"
import { type Driver, expectEqual } from "../driver.ts"
import { runRaw } from "../raw.ts"
import type { WorkerInput } from "../spec.ts"
import { runTyped } from "../typed.ts"
import { NATS_URL } from "./nats.ts"

const rawStream = (destination: string) => `BT_${destination.replace(/[^A-Za-z0-9_-]/g, "_")}`

const raw = async (input: WorkerInput) => {
  const nc = await connect({ servers: NATS_URL, name: "bench-raw", noAsyncTraces: true })
  const js = jetstream(nc)
  const jsm = await jetstreamManager(nc)
  const subject = input.destination
  let messages: ConsumerMessages | undefined
  return runRaw(input, {
    publish: async (order) => void (await js.publish(subject, rawEncode(order), { msgID: order.orderId })),
    publishBatch: async (batch) =>
      void (await Promise.all(batch.map((order) => js.publish(subject, rawEncode(order), { msgID: order.orderId })))),
    subscribe: async (prefetch, onMessage) => {
      const info = await jsm.consumers.add(rawStream(subject), {
        durable_name: input.group,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: prefetch,
        filter_subject: subject
      })
      const consumer = js.consumers.getConsumerFromInfo(info)
      messages = await consumer.consume({ max_messages: prefetch, callback: (m) => onMessage(m.data, () => m.ack()) })
    },
    unsubscribe: async () => void (await messages?.close()),
    close: () => nc.drain()
  })
}

let admin: { nc: NatsConnection; jsm: JetStreamManager } | undefined

export const driver: Driver = {
  name: "jetstream",
  title: "NATS JetStream (nats.js)",
  defaultN: 10_000,
  rawLabel: "nats.js JetStream (PubAck, durable pull consumer, ack)",
  setup: async () => {
    const nc = await connect({ servers: NATS_URL, name: "bench-admin" })
    admin = { nc, jsm: await jetstreamManager(nc) }
    return { env: {}, close: () => nc.drain() }
  },
  prepare: async (input) => {
    const { jsm } = admin!
    if (input.side === "raw") await jsm.streams.add({ name: rawStream(input.destination), subjects: [input.destination], storage: "memory" as never })
    return async (result) => {
      const stream = await jsm.streams.find(input.destination)
      try {
        const expected = input.warmup + input.n
        expectEqual("messages confirmed by the worker", result.published, expected)
        const info = await jsm.streams.info(stream)
        expectEqual(`messages in stream ${stream}`, info.state.messages, expected)
        if (input.case.kind !== "pipeline") return `stream holds ${info.state.messages}`
        expectEqual("distinct orders handled", result.consumed, expected)
        let consumers = 0
        for await (const c of jsm.consumers.list(stream)) {
          consumers++
          expectEqual(`pending in consumer ${c.name}`, c.num_pending, 0)
          expectEqual(`unacked in consumer ${c.name}`, c.num_ack_pending, 0)
          expectEqual(`ack floor of ${c.name}`, c.ack_floor.stream_seq, info.state.last_seq)
        }
        expectEqual("consumers on the stream", consumers, 1)
        return `stream holds ${info.state.messages}, consumer acked all (ack floor ${info.state.last_seq})`
      } finally {
        await jsm.streams.delete(stream)
      }
    }
  },
  typed: (input) =>
    runTyped(input, NatsBroker.layer({ connection: { servers: NATS_URL, name: "bench-typed" }, defaultStream: { storage: "memory" } })),
  raw
}
