import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Result, Stream } from "effect"
import { TestClock } from "effect/testing"
import { laneKey, laneOf, processAll } from "../src/internal/consumer/lanes.ts"
import type { LanesConfig } from "../src/internal/consumer/options.ts"
import type { Delivery } from "../src/Subscriber.ts"
import * as Fake from "./helpers/fakeDelivery.ts"

interface Item {
  readonly n: number
  readonly key: string
  readonly lane?: string
}

const deliveries = (items: ReadonlyArray<Item>): Stream.Stream<Delivery<Item>> =>
  Stream.fromIterable(items.map((item) =>
    Fake.decoded(item, {
      envelope: { id: `m-${item.n}`, key: item.key, coordinates: { destination: "orders", lane: item.lane ?? "0" } }
    }).delivery
  ))

/** A handler taking `millis(n)` of TestClock time; records starts, ends and the most running at once. */
const observed = (millis: (item: Item) => number) => {
  const log: Array<{ readonly n: number; readonly key: string; readonly event: "start" | "end" }> = []
  const running = { now: 0, max: 0 }
  const begin = (delivery: Delivery<Item>) => {
    const item = Result.getOrUndefined(delivery.value)!
    return Effect.gen(function*() {
      running.now++
      running.max = Math.max(running.max, running.now)
      log.push({ n: item.n, key: item.key, event: "start" })
      yield* Effect.sleep(millis(item))
      log.push({ n: item.n, key: item.key, event: "end" })
      running.now--
    })
  }
  return { begin, log, running }
}

const config = (concurrency: number, ordering: LanesConfig["ordering"]): LanesConfig => ({ concurrency, ordering, bufferSize: 16 })

const items = (count: number, keys: number): Array<Item> =>
  Array.from({ length: count }, (_, n) => ({ n, key: `k${n % keys}`, lane: String(n % keys) }))

/** Per key, handlers start in order and never overlap. */
const assertSequentialPerKey = (log: ReadonlyArray<{ readonly n: number; readonly key: string; readonly event: string }>) => {
  const byKey = new Map<string, Array<{ readonly n: number; readonly event: string }>>()
  for (const entry of log) byKey.set(entry.key, [...(byKey.get(entry.key) ?? []), entry])
  for (const [key, events] of byKey) {
    for (let i = 0; i < events.length; i += 2) {
      assert.strictEqual(events[i]!.event, "start", `key ${key}: overlapping handlers`)
      assert.strictEqual(events[i + 1]!.event, "end", `key ${key}: overlapping handlers`)
      assert.strictEqual(events[i]!.n, events[i + 1]!.n)
      if (i > 0) assert.isAbove(events[i]!.n, events[i - 2]!.n, `key ${key}: out of order`)
    }
  }
}

describe("consumer lanes", () => {
  it("laneKey and laneOf: the key (else the id) or the broker lane, hashed into [0, concurrency)", () => {
    const withKey = Fake.decoded(1, { envelope: { id: "i", key: "customer-1", coordinates: { destination: "o", lane: "3" } } }).delivery
    const withoutKey = Fake.decoded(1, { envelope: { id: "i", key: undefined } }).delivery
    assert.strictEqual(laneKey("key")(withKey), "customer-1")
    assert.strictEqual(laneKey("key")(withoutKey), "i")
    assert.strictEqual(laneKey("partition")(withKey), "3")
    for (const key of ["a", "b", "customer-1", ""]) {
      const lane = laneOf(key, 8)
      assert.isTrue(Number.isInteger(lane) && lane >= 0 && lane < 8)
      assert.strictEqual(laneOf(key, 8), lane)
    }
  })

  it.effect("concurrency 1: one at a time, in stream order", () =>
    Effect.gen(function*() {
      const { begin, log, running } = observed(() => 10)
      const fiber = yield* processAll(config(1, "none"), begin)(deliveries(items(6, 3))).pipe(Effect.forkChild)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.strictEqual(running.max, 1)
      assert.deepStrictEqual(log.filter((e) => e.event === "start").map((e) => e.n), [0, 1, 2, 3, 4, 5])
    }))

  it.effect("ordering none: up to concurrency at once, every delivery once", () =>
    Effect.gen(function*() {
      const { begin, log, running } = observed((item) => 10 + (item.n % 3) * 7)
      const fiber = yield* processAll(config(4, "none"), begin)(deliveries(items(20, 2))).pipe(Effect.forkChild)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      assert.strictEqual(running.max, 4)
      assert.deepStrictEqual(log.filter((e) => e.event === "end").map((e) => e.n).sort((a, b) => a - b), items(20, 2).map((i) => i.n))
    }))

  it.effect("ordering key: sequential per key, parallel across keys, within the bound", () =>
    Effect.gen(function*() {
      const { begin, log, running } = observed((item) => 5 + (item.n % 4) * 3)
      const fiber = yield* processAll(config(4, "key"), begin)(deliveries(items(40, 6))).pipe(Effect.forkChild)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      assert.isAtMost(running.max, 4)
      assert.isAbove(running.max, 1, "keys were not handled in parallel")
      assert.strictEqual(log.length, 80)
      assertSequentialPerKey(log)
    }))

  it.effect("ordering partition: sequential per broker lane", () =>
    Effect.gen(function*() {
      const { begin, log } = observed((item) => 3 + (item.n % 5))
      // The lane is the broker's; keys differ within a lane, so ordering must follow the lane.
      const laned = Array.from({ length: 30 }, (_, n): Item => ({ n, key: `lane-${n % 3}`, lane: String(n % 3) }))
      const stream = Stream.fromIterable(laned.map((item) =>
        Fake.decoded(item, { envelope: { id: `m-${item.n}`, key: `unique-${item.n}`, coordinates: { destination: "o", lane: item.lane! } } })
          .delivery
      ))
      const fiber = yield* processAll(config(3, "partition"), begin)(stream).pipe(Effect.forkChild)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      assertSequentialPerKey(log)
    }))
})
