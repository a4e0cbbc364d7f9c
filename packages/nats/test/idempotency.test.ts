import { assert, describe, it } from "@effect/vitest"
import { Consumer, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Effect, Fiber, Layer, Schema } from "effect"
import { KeyValueStore } from "effect/persistence"
import { NatsBroker, NatsKeyValueStore } from "../src/index.ts"
import { servers, unique } from "./helpers.ts"

const Order = Schema.Struct({ n: Schema.Number })

describe("JetStream KV as the consumer's idempotency store", () => {
  it.live("ids remembered in the KV bucket are skipped, by any consumer instance sharing the bucket", () =>
    Effect.gen(function*() {
      const topic = Topic.make(unique("sy.idem"), Order)
      const group = unique("g")
      const kv = yield* KeyValueStore.KeyValueStore
      const handled: Array<number> = []
      const run = Consumer.run(topic, ({ n }) => Effect.sync(() => handled.push(n)), { group, idempotency: true })
      // First instance processes 1 and 2 (the ledger writes their ids to the bucket).
      const first = yield* run.pipe(Effect.forkChild)
      const receipts = yield* Publisher.publishAll(topic, [{ n: 1 }, { n: 2 }])
      yield* Effect.sleep("100 millis").pipe(Effect.repeat({ until: () => handled.length >= 2 }), Effect.timeout("10 seconds"))
      yield* Fiber.interrupt(first)
      const keys = yield* kv.keys
      for (const r of receipts) assert.isTrue(keys.some((k) => k.endsWith(r.id)), `id ${r.id} not in the bucket`)
      // Another instance: an id already in the bucket is skipped, a new one is handled.
      yield* kv.set(`switchyard:processed:${topic.name}:${group}:already-done`, "1")
      const second = yield* run.pipe(Effect.forkChild)
      yield* Publisher.publish(topic, { n: 3 }, { id: "already-done" })
      yield* Publisher.publish(topic, { n: 4 })
      yield* Effect.sleep("100 millis").pipe(Effect.repeat({ until: () => handled.includes(4) }), Effect.timeout("10 seconds"))
      yield* Effect.sleep("300 millis")
      yield* Fiber.interrupt(second)
      assert.deepStrictEqual(handled, [1, 2, 4])
    }).pipe(Effect.provide(
      Switchyard.on(
        NatsKeyValueStore.layer(unique("sy-idem"), { storage: "memory" }).pipe(
          Layer.provideMerge(NatsBroker.layer({ connection: { servers }, defaultStream: { storage: "memory", maxAge: "15 minutes" } }))
        )
      )
    )))
})
