import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { drain, make, Pending } from "../src/internal/consumer/drain.ts"
import * as Fake from "./helpers/fakeDelivery.ts"

describe("consumer drain", () => {
  it("Pending: a delivery is claimed once, by a lane or by takeAll", () => {
    const pending = new Pending<string>()
    pending.add("a")
    pending.add("b")
    pending.add("c")
    assert.isTrue(pending.start("a"))
    assert.isFalse(pending.start("a"))
    assert.deepStrictEqual([...pending.takeAll()].sort(), ["b", "c"])
    assert.isFalse(pending.start("b"), "a delivery given back was started")
    assert.strictEqual(pending.size, 0)
  })

  it.effect("begin runs a tracked delivery; once stopping, a lane's next delivery is given back instead", () =>
    Effect.gen(function*() {
      const state = yield* make<number>()
      const handled: Array<string> = []
      const begin = state.begin((delivery) => Effect.sync(() => handled.push(delivery.envelope.id)))
      const first = Fake.decoded(1, { envelope: { id: "first" } })
      const second = Fake.decoded(2, { envelope: { id: "second" } })
      yield* begin(state.track(first.delivery))
      state.track(second.delivery)
      yield* Deferred.succeed(state.stop, undefined)
      yield* begin(second.delivery)
      assert.deepStrictEqual(handled, ["first"])
      assert.deepStrictEqual(first.settlements, [])
      assert.deepStrictEqual(second.settlements, [{ _tag: "nack", options: undefined }])
    }))

  it.effect("releasePending gives back at once (nack, no delay) what was taken and not started; a lane then skips it", () =>
    Effect.gen(function*() {
      const state = yield* make<number>()
      const handled: Array<string> = []
      const begin = state.begin((delivery) => Effect.sync(() => handled.push(delivery.envelope.id)))
      const fakes = [1, 2, 3].map((n) => Fake.decoded(n, { envelope: { id: `m-${n}` } }))
      for (const fake of fakes) state.track(fake.delivery)
      yield* begin(fakes[0]!.delivery)
      yield* state.releasePending
      for (const fake of fakes) yield* begin(fake.delivery)
      assert.deepStrictEqual(handled, ["m-1"])
      assert.deepStrictEqual(fakes.map((f) => f.settlements.length), [0, 1, 1])
      assert.deepStrictEqual(fakes[1]!.settlements, [{ _tag: "nack", options: undefined }])
    }))

  it.effect("forget drops what was taken without settling it (the broker redelivers after a subscription failure)", () =>
    Effect.gen(function*() {
      const state = yield* make<number>()
      const fake = Fake.decoded(1)
      state.track(fake.delivery)
      yield* state.forget
      yield* state.releasePending
      yield* state.begin(() => Effect.die("must not run"))(fake.delivery)
      assert.deepStrictEqual(fake.settlements, [])
    }))

  it.effect("drain signals stop and waits for the consumer's fiber, up to the timeout", () =>
    Effect.gen(function*() {
      const state = yield* make<number>()
      const finished = { value: false }
      // A consumer that needs 2 seconds after stop to finish its in-flight work.
      const consumer = yield* Deferred.await(state.stop).pipe(
        Effect.andThen(Effect.sleep("2 seconds")),
        Effect.andThen(Effect.sync(() => (finished.value = true))),
        Effect.forkChild
      )
      const draining = yield* drain(state, consumer, Duration.seconds(5), "consumer").pipe(Effect.forkChild)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(draining)
      assert.isTrue(Deferred.isDoneUnsafe(state.stop))
      assert.isTrue(finished.value)

      const slow = yield* make<number>()
      const stuck = yield* Effect.never.pipe(Effect.forkChild)
      const gaveUp = yield* drain(slow, stuck, Duration.seconds(1), "consumer").pipe(Effect.forkChild)
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(gaveUp.pollUnsafe())
      yield* TestClock.adjust("1 milli")
      yield* Fiber.join(gaveUp)
      assert.isUndefined(stuck.pollUnsafe(), "drain interrupted the consumer itself (the caller does)")
      yield* Fiber.interrupt(stuck)
    }))
})
