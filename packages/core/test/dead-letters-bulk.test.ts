/**
 * A 10,000-message redrive on the in-memory broker, on the real clock: every dead letter comes back to the
 * group that parked it and is handled exactly once more, nothing stays parked or unacknowledged, progress
 * arrives at least every 100 messages. Prints the figures (count, time, rate).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, References, Schedule, Schema } from "effect"
import { Consumer, DeadLetters, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"

const Order = Schema.Struct({ id: Schema.String })
const orders = Topic.make("bulk.orders", Order, { key: (o) => o.id })
const total = 10_000

class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {}) {}

const waitFor = (condition: Effect.Effect<boolean>) =>
  condition.pipe(
    Effect.flatMap((holds) => holds ? Effect.void : Effect.fail("not yet" as const)),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeout("60 seconds")
  )

describe("DeadLetters: a 10,000-message redrive on the in-memory broker", () => {
  it.live("redrives 10,000 dead letters, loses none, handles each once more, reports its rate", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const downstream = { up: false }
      const attempts = new Map<string, number>()
      const handled = new Set<string>()
      yield* Consumer.start(orders, (order) =>
        Effect.suspend(() => {
          attempts.set(order.id, (attempts.get(order.id) ?? 0) + 1)
          if (!downstream.up) return Effect.fail(new Unavailable())
          handled.add(order.id)
          return Effect.void
        }), { group: "billing", idempotency: true, concurrency: 8, ordering: "none" })
      for (let batch = 0; batch < total / 1000; batch++) {
        yield* Publisher.publishMessages(
          orders,
          Array.from({ length: 1000 }, (_, i) => {
            const id = `o-${batch * 1000 + i}`
            return { value: { id }, options: { id } }
          })
        )
      }
      yield* waitFor(Effect.map(inspect.deadLetters(orders.name), (dls) => dls.length === total))
      assert.strictEqual(handled.size, 0)

      downstream.up = true
      const progress: Array<DeadLetters.Progress> = []
      const started = Date.now()
      const summary = yield* DeadLetters.redrive(orders, { onProgress: (p) => Effect.sync(() => progress.push(p)) })
      const redriveMillis = Date.now() - started
      yield* waitFor(Effect.sync(() => handled.size === total))
      const handledMillis = Date.now() - started

      assert.deepStrictEqual(
        [summary.retained, summary.seen, summary.matched, summary.redriven, summary.kept, summary.notRemoved, summary.unredrivable],
        [total, total, total, total, 0, 0, 0]
      )
      assert.deepStrictEqual(summary.byReason, { Unavailable: total })
      // Nothing lost, nothing stuck, nothing handled twice.
      assert.strictEqual((yield* inspect.deadLetters(orders.name)).length, 0)
      assert.strictEqual((yield* DeadLetters.count(orders)).total, 0)
      assert.strictEqual(yield* inspect.lag(orders.name, "billing"), 0)
      assert.strictEqual(yield* inspect.publishedCount(orders.name), 2 * total)
      for (let i = 0; i < total; i++) assert.strictEqual(attempts.get(`o-${i}`), 2, `o-${i}`)
      // Progress at least every 100 messages, monotone, ending with everything done.
      assert.isAtLeast(progress.length, total / 100)
      for (let i = 1; i < progress.length; i++) {
        assert.isAtMost(progress[i]!.seen - progress[i - 1]!.seen, 100)
        assert.isAtLeast(progress[i]!.done, progress[i - 1]!.done)
      }
      assert.deepStrictEqual(progress.at(-1), {
        retained: total,
        seen: total,
        matched: total,
        done: total,
        elapsedMillis: progress.at(-1)!.elapsedMillis
      })
      console.log(
        `[figures] memory redrive: ${summary.redriven} of ${summary.retained} dead letters redriven in ` +
          `${summary.elapsedMillis} ms (${Math.round(summary.ratePerSecond)} msg/s by the summary; ${redriveMillis} ms wall), ` +
          `all ${handled.size} handled again by "billing" ${handledMillis} ms after the start; ` +
          `${progress.length} progress reports; dead letters left: 0; lost: 0`
      )
    }).pipe(Effect.provide(Switchyard.layerMemory()), Effect.provideService(References.MinimumLogLevel, "None")), { timeout: 120_000 })
})
