import { assert, layer } from "@effect/vitest"
import * as amqp from "amqplib"
import { Broker, Consumer, Headers, Topic } from "@switchyard/core"
import { Effect, Fiber, Schedule, Schema } from "effect"
import { BrokerLive, message, unique } from "./helpers.ts"

const Order = Schema.Struct({ orderId: Schema.String, amount: Schema.Number })

/** Reads every message of a queue with basic.get (the dead-letter parking queue needs no subscriber). */
const drainQueue = (queue: string) =>
  Effect.promise(async () => {
    const conn = await amqp.connect("amqp://guest:guest@127.0.0.1:5672")
    try {
      const ch = await conn.createChannel()
      const out: Array<amqp.GetMessage> = []
      for (let msg = await ch.get(queue, { noAck: true }); msg !== false; msg = await ch.get(queue, { noAck: true })) {
        out.push(msg)
      }
      return out
    } finally {
      await conn.close()
    }
  })

layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("poison messages", (it) => {
  it.effect("invalid JSON and a wrong content type are dead-lettered by the core Consumer into <destination>.dlq, kept with no subscriber", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("poison")
      const topic = Topic.make(destination, Order)
      const handled: Array<string> = []
      const fiber = yield* Consumer.run(topic, (order) => Effect.sync(() => handled.push(order.orderId)), { group: "billing" }).pipe(
        Effect.forkChild
      )
      // wait until the consumer's group queue exists (publishing is mandatory)
      yield* broker.publish(destination, [message("probe", JSON.stringify({ orderId: "o-0", amount: 0 }), { contentType: "application/json" })]).pipe(
        Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") })
      )
      const good = [1, 2, 3].map((n) =>
        message(`good-${n}`, JSON.stringify({ orderId: `o-${n}`, amount: n }), { contentType: "application/json" })
      )
      const notJson = message("bad-json", "{\"orderId\": ", { contentType: "application/json" })
      const wrongType = message("bad-type", "<order id=\"o-9\"/>", { contentType: "application/xml" })
      yield* broker.publish(destination, [good[0]!, notJson, good[1]!, wrongType, good[2]!])
      yield* Effect.gen(function*() {
        while (!["o-1", "o-2", "o-3"].every((id) => handled.includes(id))) yield* Effect.sleep("50 millis")
      }).pipe(Effect.timeout("20 seconds"))
      let dead: Array<amqp.GetMessage> = []
      yield* Effect.gen(function*() {
        while (dead.length < 2) {
          dead = [...dead, ...(yield* drainQueue(`${destination}.dlq`))]
          if (dead.length < 2) yield* Effect.sleep("100 millis")
        }
      }).pipe(Effect.timeout("20 seconds"))
      yield* Fiber.interrupt(fiber)
      const byId = new Map(dead.map((m) => [String(m.properties.headers?.[Headers.deadLetterOriginalId] ?? m.properties.messageId), m]))
      for (const id of ["bad-json", "bad-type"]) {
        const m = byId.get(id)
        assert.isDefined(m, `${id} was not dead-lettered`)
        assert.strictEqual(m!.properties.headers?.[Headers.deadLetterErrorTag], "DecodeError")
        assert.strictEqual(m!.properties.headers?.[Headers.deadLetterOriginDestination], destination)
        assert.isString(m!.properties.headers?.[Headers.deadLetterReason])
      }
      assert.strictEqual(byId.get("bad-type")!.content.toString("utf8"), "<order id=\"o-9\"/>")
      assert.deepStrictEqual(handled.filter((id) => id !== "o-0").sort(), ["o-1", "o-2", "o-3"])
    }))
})
