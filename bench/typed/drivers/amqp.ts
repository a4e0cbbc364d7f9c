/**
 * RabbitMQ. Switchyard: `AmqpBroker.layer({ url })`. Raw: amqplib on one connection (TCP_NODELAY, like
 * the adapter): persistent + mandatory publishes on a confirm channel with `messageId` and `contentType`
 * (single publishes resolve on their own confirm; batches when every confirm of the batch arrived);
 * consumption on a channel with `prefetch`, `ack` per message after the handler.
 * Both sides use the same topology, declared before the worker starts: a durable topic exchange named
 * after the destination and the group's durable classic queue `<destination>.<group>` bound with `#`.
 */
import * as amqp from "amqplib"
import { AmqpBroker, AmqpTopology } from "@switchyard/amqp"
import { Effect, Redacted } from "effect"
import { rawEncode } from "../common.ts"
import { type Driver, expectEqual } from "../driver.ts"
import { runRaw } from "../raw.ts"
import { type Order, type WorkerInput } from "../spec.ts"
import { runTyped } from "../typed.ts"

const URL_ = process.env["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672"

const topology = (destination: string, group: string): AmqpTopology.Topology => ({
  exchanges: [{ name: destination, type: "topic", durable: true }],
  ...AmqpTopology.group(destination, group, "classic")
})

const options = (order: Order): amqp.Options.Publish => ({
  persistent: true,
  mandatory: true,
  messageId: order.orderId,
  contentType: "application/json"
})

const raw = async (input: WorkerInput) => {
  const conn = await amqp.connect(URL_, { noDelay: true })
  const pub = await conn.createConfirmChannel()
  let returned = 0
  pub.on("return", () => void returned++)
  const exchange = input.destination
  const queue = AmqpTopology.groupQueueName(input.destination, input.group)
  const send = (order: Order, done: (err: unknown) => void) => pub.publish(exchange, "", rawEncode(order), options(order), done)
  let sub: amqp.Channel | undefined
  let tag: string | undefined
  const result = await runRaw(input, {
    publish: (order) => new Promise<void>((resolve, reject) => void send(order, (err) => (err ? reject(err) : resolve()))),
    publishBatch: (batch) =>
      new Promise<void>((resolve, reject) => {
        let remaining = batch.length
        let i = 0
        const pump = () => {
          while (i < batch.length) {
            const ok = send(batch[i++]!, (err) => {
              if (err) return reject(err)
              if (--remaining === 0) resolve()
            })
            if (!ok) return void pub.once("drain", pump)
          }
        }
        pump()
      }),
    subscribe: async (prefetch, onMessage) => {
      const ch = await conn.createChannel()
      sub = ch
      await ch.prefetch(prefetch)
      const ok = await ch.consume(queue, (msg) => {
        if (msg !== null) onMessage(msg.content, () => ch.ack(msg))
      })
      tag = ok.consumerTag
    },
    unsubscribe: async () => {
      if (sub !== undefined && tag !== undefined) await sub.cancel(tag)
      await sub?.close()
    },
    close: async () => {
      await pub.close()
      await conn.close()
    }
  })
  if (returned > 0) throw new Error(`${returned} messages were returned unroutable`)
  return result
}

let admin: { conn: amqp.ChannelModel; ch: amqp.Channel } | undefined

export const driver: Driver = {
  name: "amqp",
  title: "RabbitMQ (amqplib)",
  defaultN: 10_000,
  rawLabel: "amqplib (confirm channel, persistent, prefetch, ack)",
  setup: async () => {
    const conn = await amqp.connect(URL_)
    admin = { conn, ch: await conn.createChannel() }
    return { env: {}, close: () => conn.close() }
  },
  prepare: async (input) => {
    const { ch } = admin!
    await Effect.runPromise(AmqpTopology.declareOn(ch, topology(input.destination, input.group)))
    const queue = AmqpTopology.groupQueueName(input.destination, input.group)
    const expected = input.warmup + input.n
    return async (result) => {
      try {
        expectEqual("messages confirmed by the worker", result.published, expected)
        const q = await ch.checkQueue(queue)
        if (input.case.kind !== "pipeline") {
          expectEqual(`messages in ${queue}`, q.messageCount, expected)
          return `${q.messageCount} messages in the group queue`
        }
        expectEqual("distinct orders handled", result.consumed, expected)
        // Unacked deliveries return to the queue when the worker's channel closes: an empty queue means all acked.
        expectEqual(`messages left in ${queue} (ready + returned unacked)`, q.messageCount, 0)
        return `${result.consumed} handled, group queue empty`
      } finally {
        await ch.deleteQueue(queue)
        await ch.deleteExchange(input.destination)
      }
    }
  },
  typed: (input) => runTyped(input, AmqpBroker.layer({ url: Redacted.make(URL_), connectionName: "bench-typed" })),
  raw
}
