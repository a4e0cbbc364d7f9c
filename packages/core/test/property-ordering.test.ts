/**
 * Ordering properties of the consumer runtime under TestClock, with random handler latencies and
 * random concurrency:
 * - `ordering: "key"`: for each key, handlers start in publish order and never overlap;
 * - `ordering: "partition"`: for each broker lane, handlers start in offset order;
 * - `ordering: "none"`: every message is handled exactly once;
 * - in every mode, at most `concurrency` handlers run at once, and the group ends with no lag.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, References, Schedule, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { Consumer, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"

const Item = Schema.Struct({ key: Schema.String, seq: Schema.Number, latency: Schema.Number, failures: Schema.Number })
type Item = typeof Item.Type
const items = Topic.make("items", Item, { key: (i) => i.key })

interface Start {
  readonly key: string
  readonly seq: number
  /** 1 for the first handler run of the message, then 2, 3… for retries. */
  readonly attempt: number
  readonly partition: number
  readonly offset: number
}

interface Observed {
  readonly starts: ReadonlyArray<Start>
  readonly completions: ReadonlyArray<number>
  readonly maxActive: number
  readonly overlapsPerKey: number
  readonly lag: number
  readonly inFlight: number
}

/**
 * Publishes `messages` (the first `split` before the consumer starts, the rest while it runs), consumes
 * them with random latencies (each message failing its first `failures` attempts, retried every 15ms)
 * and returns what the handler observed.
 */
const scenario = (
  messages: ReadonlyArray<Omit<Item, "seq" | "failures"> & { readonly failures?: number }>,
  split: number,
  options: { readonly concurrency: number; readonly ordering: Consumer.Ordering; readonly prefetch?: number }
) =>
  Effect.gen(function*() {
    const inspect = yield* MemoryBroker.MemoryBroker
    const all: Array<Item> = messages.map((m, seq) => ({ ...m, failures: m.failures ?? 0, seq }))
    const attempts = new Map<number, number>()
    const starts: Array<Start> = []
    const completions: Array<number> = []
    const activeByKey = new Map<string, number>()
    let active = 0
    let maxActive = 0
    let overlapsPerKey = 0
    yield* Publisher.publishAll(items, all.slice(0, split))
    const consumer = yield* Consumer.run(
      items,
      (item, envelope) =>
        Effect.gen(function*() {
          const attempt = (attempts.get(item.seq) ?? 0) + 1
          attempts.set(item.seq, attempt)
          starts.push({
            key: item.key,
            seq: item.seq,
            attempt,
            partition: envelope.coordinates.partition ?? -1,
            offset: Number(envelope.coordinates.offset)
          })
          active++
          maxActive = Math.max(maxActive, active)
          const sameKey = activeByKey.get(item.key) ?? 0
          if (sameKey > 0) overlapsPerKey++
          activeByKey.set(item.key, sameKey + 1)
          yield* Effect.sleep(`${item.latency} millis`)
          activeByKey.set(item.key, activeByKey.get(item.key)! - 1)
          active--
          if (attempt <= item.failures) return yield* Effect.fail(`transient failure of ${item.seq}`)
          completions.push(item.seq)
        }),
      { group: "g", retry: Schedule.spaced("15 millis").pipe(Schedule.upTo({ times: 3 })), ...options }
    ).pipe(Effect.forkChild)
    // Let the consumer get going, then publish the rest one by one while it runs.
    yield* TestKit.advance("5 millis", "1 millis")
    for (const item of all.slice(split)) {
      yield* Publisher.publish(items, item)
      yield* TestKit.settle(5)
    }
    const done = yield* TestKit.advanceUntil(
      Effect.sync(() => completions.length >= all.length),
      { within: "5 minutes" }
    )
    assert.isTrue(done, `only ${completions.length} of ${all.length} handled`)
    // More time changes nothing: no message is handled twice.
    yield* TestKit.advance("200 millis")
    const lag = yield* inspect.lag("items", "g")
    const inFlight = yield* inspect.inFlight("items", "g")
    yield* Fiber.interrupt(consumer)
    const observed: Observed = { starts, completions, maxActive, overlapsPerKey, lag, inFlight }
    return observed
  }).pipe(
    Effect.provide(Switchyard.layerMemory({ partitions: 4 })),
    Effect.provideService(References.MinimumLogLevel, "Error"),
    Effect.provide(TestClock.layer())
  )

const messagesArb = fc.array(
  fc.record({
    key: fc.constantFrom("a", "b", "c", "d", "e", "f", "g"),
    latency: fc.integer({ min: 0, max: 60 })
  }),
  { minLength: 1, maxLength: 40 }
)

/** Like `messagesArb`, each message failing its first 0–2 attempts. */
const failingMessagesArb = fc.array(
  fc.record({
    key: fc.constantFrom("a", "b", "c", "d", "e", "f", "g"),
    latency: fc.integer({ min: 0, max: 60 }),
    failures: fc.integer({ min: 0, max: 2 })
  }),
  { minLength: 1, maxLength: 30 }
)

const sorted = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)

const assertExactlyOnce = (observed: Observed, count: number) => {
  const range = Array.from({ length: count }, (_, i) => i)
  assert.deepStrictEqual(
    sorted(observed.starts.filter((s) => s.attempt === 1).map((s) => s.seq)),
    range,
    "every message started exactly once"
  )
  assert.deepStrictEqual(sorted(observed.completions), range, "every message completed exactly once")
  assert.strictEqual(observed.lag, 0, "everything acknowledged")
  assert.strictEqual(observed.inFlight, 0, "nothing left in flight")
}

describe("ordering properties under random latencies", () => {
  it("ordering \"key\": per key, handlers start in publish order and never overlap", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        messagesArb,
        fc.nat(),
        async (concurrency, messages, splitSeed) => {
          const split = splitSeed % (messages.length + 1)
          const observed = await Effect.runPromise(scenario(messages, split, { concurrency, ordering: "key" }))
          assertExactlyOnce(observed, messages.length)
          for (const key of new Set(messages.map((m) => m.key))) {
            const published = messages.flatMap((m, seq) => m.key === key ? [seq] : [])
            const started = observed.starts.filter((s) => s.key === key).map((s) => s.seq)
            assert.deepStrictEqual(started, published, `key ${key}: start order differs from publish order`)
          }
          assert.strictEqual(observed.overlapsPerKey, 0, "two handlers of one key ran at once")
          assert.isAtMost(observed.maxActive, concurrency)
        }
      ),
      { numRuns: 25 }
    )
  })

  it("ordering \"key\" with transient failures: a message's retries all run before the next message of its key", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        failingMessagesArb,
        async (concurrency, messages) => {
          const observed = await Effect.runPromise(scenario(messages, messages.length, { concurrency, ordering: "key" }))
          assertExactlyOnce(observed, messages.length)
          for (const key of new Set(messages.map((m) => m.key))) {
            const published = messages.flatMap((m, seq) => m.key === key ? [seq] : [])
            // Every run (first attempts and retries) of the key, in start order.
            const runs = observed.starts.filter((s) => s.key === key).map((s) => s.seq)
            const expected = published.flatMap((seq) => Array.from({ length: messages[seq]!.failures + 1 }, () => seq))
            assert.deepStrictEqual(runs, expected, `key ${key}: runs interleaved or out of order`)
          }
          assert.strictEqual(observed.overlapsPerKey, 0)
        }
      ),
      { numRuns: 25 }
    )
  })

  it("ordering \"partition\": per broker lane, handlers start in offset order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        messagesArb,
        async (concurrency, messages) => {
          const observed = await Effect.runPromise(
            scenario(messages, messages.length, { concurrency, ordering: "partition" })
          )
          assertExactlyOnce(observed, messages.length)
          for (const partition of new Set(observed.starts.map((s) => s.partition))) {
            const offsets = observed.starts.filter((s) => s.partition === partition).map((s) => s.offset)
            assert.deepStrictEqual(offsets, sorted(offsets), `partition ${partition} out of order`)
          }
          // Keys map to partitions, so per-key order holds too.
          for (const key of new Set(messages.map((m) => m.key))) {
            const started = observed.starts.filter((s) => s.key === key).map((s) => s.seq)
            assert.deepStrictEqual(started, sorted(started))
          }
          assert.isAtMost(observed.maxActive, concurrency)
        }
      ),
      { numRuns: 25 }
    )
  })

  it("ordering \"none\": every message is handled exactly once, at most `concurrency` at a time", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        messagesArb,
        fc.nat(),
        fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
        async (concurrency, messages, splitSeed, prefetch) => {
          const split = splitSeed % (messages.length + 1)
          const observed = await Effect.runPromise(
            scenario(messages, split, {
              concurrency,
              ordering: "none",
              ...(prefetch === undefined ? {} : { prefetch })
            })
          )
          assertExactlyOnce(observed, messages.length)
          assert.isAtMost(observed.maxActive, concurrency)
          if (prefetch !== undefined) assert.isAtMost(observed.maxActive, prefetch)
        }
      ),
      { numRuns: 25 }
    )
  })

  it.effect("ordering \"key\" does run different keys in parallel (concurrency is used)", () =>
    Effect.gen(function*() {
      // Eight distinct keys of 100ms each with concurrency 8: far less than the 800ms a sequential run needs.
      const keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"]
      const observed = yield* scenario(keys.map((key) => ({ key, latency: 100 })), 8, { concurrency: 8, ordering: "key" })
      assertExactlyOnce(observed, 8)
      assert.isAtLeast(observed.maxActive, 2)
    }))

  it.effect("ordering \"key\" with concurrency 4: one hot key is strictly sequential", () =>
    Effect.gen(function*() {
      const messages = Array.from({ length: 12 }, (_, i) => ({ key: "hot", latency: 30 - 2 * i }))
      const observed = yield* scenario(messages, 6, { concurrency: 4, ordering: "key" })
      assertExactlyOnce(observed, 12)
      assert.deepStrictEqual(observed.starts.map((s) => s.seq), messages.map((_, i) => i))
      assert.deepStrictEqual(observed.completions, messages.map((_, i) => i))
      assert.strictEqual(observed.maxActive, 1)
    }))
})
