import { assert, layer } from "@effect/vitest"
import type * as amqp from "amqplib"
import { Broker, Consumer, Headers, Topic } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { Effect, Fiber, Schedule, Schema } from "effect"
import { AmqpTopology } from "../src/index.ts"
import { RawAmqp } from "../src/testing/index.ts"
import { awaitQueue, BrokerLive, drainQueue, eventually, message, rawChannel, rawPublish, unique } from "./helpers.ts"

const Order = Schema.Struct({ orderId: Schema.String, amount: Schema.Number })

const Coordinates = Schema.Struct({ routingKey: Schema.String })
const decodeCoordinates = Schema.decodeUnknownSync(Schema.fromJsonString(Coordinates))

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
      // wait until the consumer's group queue exists: a probe published before it is dropped by RabbitMQ
      yield* broker.publish(destination, [message("probe", JSON.stringify({ orderId: "o-0", amount: 0 }), { contentType: "application/json" })]).pipe(
        Effect.repeat({ until: () => handled.includes("o-0"), schedule: Schedule.spaced("100 millis") })
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

  it.effect("a 10,000-message poison corpus from amqplib: the consumer survives, every valid order is handled, every invalid one is dead-lettered with a reason", () =>
    Effect.gen(function*() {
      const channel = yield* rawChannel
      const destination = unique("corpus")
      yield* RawAmqp.declare(channel, AmqpTopology.consumerGroup(destination, "g"))
      const corpus = PoisonCorpus.make({ count: 10_000 })
      const handled = new Map<string, number>()
      const fiber = yield* Consumer.run(
        PoisonCorpus.topic(destination),
        (order) => Effect.sync(() => handled.set(order.id, (handled.get(order.id) ?? 0) + 1)),
        { group: "g", idempotency: true, concurrency: 4, ordering: "none", prefetch: 256 }
      ).pipe(Effect.forkChild)
      // each entry's routing key is its index: the dead letter's origin coordinates say which entry it was
      const raw = corpus.map((entry) => {
        const options: amqp.Options.Publish = { headers: { ...entry.headers } }
        if (entry.messageId !== undefined) options.messageId = entry.messageId
        if (entry.contentType !== undefined) options.contentType = entry.contentType
        return { content: entry.payload, options, routingKey: `e-${entry.index}` }
      })
      for (let i = 0; i < raw.length; i += 500) yield* rawPublish(channel, destination, raw.slice(i, i + 500))
      const invalid = corpus.filter((entry) => !entry.valid)
      const dead = yield* awaitQueue(`${destination}.dlq`, invalid.length)
      // alive at the end: a valid message published after the corpus is handled
      yield* rawPublish(channel, destination, [{ content: new TextEncoder().encode(JSON.stringify({ id: "final", n: 0 })) }])
      yield* eventually(() => handled.has("final"))
      yield* Fiber.interrupt(fiber)
      const extra = yield* drainQueue(`${destination}.dlq`)

      const deadByEntry = new Map<number, amqp.GetMessage>()
      for (const m of [...dead, ...extra]) {
        const coordinates = decodeCoordinates(String(m.properties.headers?.[Headers.deadLetterOriginCoordinates]))
        deadByEntry.set(Number(coordinates.routingKey.slice(2)), m)
      }
      const outcome: Record<string, { total: number; handled: number; deadLettered: number }> = {}
      for (const entry of corpus) {
        const row = outcome[entry.kind] ??= { total: 0, handled: 0, deadLettered: 0 }
        row.total++
        if (entry.orderId !== undefined && handled.has(entry.orderId)) row.handled++
        if (deadByEntry.has(entry.index)) row.deadLettered++
      }
      console.log(`poison corpus on RabbitMQ (${corpus.length} entries):`, PoisonCorpus.countByKind(corpus))
      console.table(outcome)
      const validIds = corpus.flatMap((entry) => (entry.orderId === undefined ? [] : [entry.orderId]))
      assert.deepStrictEqual(validIds.filter((id) => !handled.has(id)), [], "valid orders not handled")
      assert.deepStrictEqual([...handled.keys()].filter((id) => id !== "final" && !validIds.includes(id)), [], "handled but not valid")
      assert.deepStrictEqual(invalid.filter((entry) => !deadByEntry.has(entry.index)).map((e) => `${e.index}:${e.kind}`), [])
      assert.strictEqual(deadByEntry.size, invalid.length)
      assert.strictEqual(dead.length + extra.length, invalid.length, "one dead letter per invalid entry")
      for (const m of deadByEntry.values()) assert.isString(m.properties.headers?.[Headers.deadLetterReason])
    }), 120_000)
})
