import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { timeout } from "../src/internal/consumer/timeout.ts"

describe("consumer stage: timeout", () => {
  it.effect("without a timeout the attempt is returned as it is", () =>
    Effect.gen(function*() {
      const attempt = Effect.succeed(1)
      assert.strictEqual(timeout(undefined, "orders")(attempt), attempt)
    }))

  it.effect("an attempt within the timeout succeeds with its value", () =>
    Effect.gen(function*() {
      const fiber = yield* timeout(Duration.seconds(2), "orders")(Effect.as(Effect.sleep("1 second"), "done")).pipe(Effect.forkChild)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isSuccess(exit) && exit.value === "done")
    }))

  it.effect("a slower attempt is interrupted and fails with a HandlerTimeoutError naming the destination and the limit", () =>
    Effect.gen(function*() {
      const finished = { value: false }
      const slow = Effect.sleep("10 seconds").pipe(Effect.andThen(Effect.sync(() => (finished.value = true))))
      const fiber = yield* timeout(Duration.millis(500), "orders")(slow).pipe(Effect.forkChild)
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 milli")
      const exit = yield* Fiber.await(fiber)
      const error = Exit.findErrorOption(exit)
      assert.isTrue(Option.isSome(error))
      if (Option.isSome(error)) {
        assert.strictEqual(error.value._tag, "HandlerTimeoutError")
        assert.deepStrictEqual(
          error.value._tag === "HandlerTimeoutError" ? [error.value.destination, error.value.timeoutMillis] : [],
          ["orders", 500]
        )
      }
      yield* TestClock.adjust("20 seconds")
      assert.isFalse(finished.value, "the timed-out attempt kept running")
    }))

  it.effect("the attempt's own typed error passes through unchanged", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(timeout(Duration.seconds(1), "orders")(Effect.fail("declined" as const)))
      assert.strictEqual(Option.getOrUndefined(Exit.findErrorOption(exit)), "declined")
    }))
})
