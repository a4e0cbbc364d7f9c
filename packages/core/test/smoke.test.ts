import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schema } from "effect"
import { Consumer, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const orders = Topic.make("orders", Order, { key: (o) => o.id })

describe("smoke", () => {
  it.live("publish, consume, ack", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      yield* Publisher.publishAll(orders, [{ id: "a", total: 1 }, { id: "b", total: 2 }])
      const fiber = yield* Consumer.run(orders, (o) => Effect.sync(() => seen.push(o.id)), { group: "g" }).pipe(Effect.forkChild)
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(seen.sort(), ["a", "b"])
      yield* Fiber.interrupt(fiber)
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.strictEqual(yield* inspect.lag("orders", "g"), 0)
    }).pipe(Effect.provide(Switchyard.layerMemory())))
})
