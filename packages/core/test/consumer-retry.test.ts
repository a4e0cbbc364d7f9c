import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { Errors } from "../src/index.ts"
import { defaultIsRetryable, retry } from "../src/internal/consumer/retry.ts"

class Declined {
  readonly _tag = "Declined"
  constructor(readonly isRetryable: boolean) {}
}

const errorOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => Option.getOrUndefined(Exit.findErrorOption(exit))

/** An attempt failing with `errors` in turn, then succeeding; counts its runs. */
const flaky = (errors: ReadonlyArray<Declined>) => {
  const runs = { count: 0 }
  const attempt = Effect.suspend(() => {
    const error = errors[runs.count++]
    return error === undefined ? Effect.succeed("ok") : Effect.fail(error)
  })
  return { attempt, runs }
}

describe("consumer stage: retry", () => {
  it("defaultIsRetryable: everything but an error that says isRetryable false", () => {
    assert.isTrue(defaultIsRetryable("plain string"))
    assert.isTrue(defaultIsRetryable(new Error("boom")))
    assert.isTrue(defaultIsRetryable(new Declined(true)))
    assert.isFalse(defaultIsRetryable(new Declined(false)))
    assert.isFalse(defaultIsRetryable(new Errors.PublishError({ destination: "audit", reason: Errors.reason("Unroutable", "NO_ROUTE") })))
    assert.isTrue(defaultIsRetryable(new Errors.PublishError({ destination: "audit", reason: Errors.reason("Timeout", "timed out") })))
  })

  it.effect("without a schedule the attempt runs once, as it is", () =>
    Effect.gen(function*() {
      const { attempt, runs } = flaky([new Declined(true)])
      const retried = retry<Declined>({ schedule: undefined, isRetryable: () => true })(attempt)
      assert.strictEqual(retried, attempt)
      assert.deepStrictEqual(errorOf(yield* Effect.exit(retried)), new Declined(true))
      assert.strictEqual(runs.count, 1)
    }))

  it.effect("retries per the schedule, on its clock, until the attempt succeeds", () =>
    Effect.gen(function*() {
      const { attempt, runs } = flaky([new Declined(true), new Declined(true)])
      const schedule = Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 5 }))
      const fiber = yield* retry<Declined>({ schedule, isRetryable: defaultIsRetryable })(attempt).pipe(Effect.forkChild)
      yield* Effect.yieldNow
      assert.strictEqual(runs.count, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(runs.count, 2)
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isSuccess(exit) && exit.value === "ok")
      assert.strictEqual(runs.count, 3)
    }))

  it.effect("stops at the first error isRetryable rejects; gives up when the schedule ends", () =>
    Effect.gen(function*() {
      const fatal = flaky([new Declined(true), new Declined(false), new Declined(true)])
      const schedule = Schedule.recurs(10)
      const exit = yield* Effect.exit(retry<Declined>({ schedule, isRetryable: defaultIsRetryable })(fatal.attempt))
      assert.deepStrictEqual(errorOf(exit), new Declined(false))
      assert.strictEqual(fatal.runs.count, 2)

      const exhausted = flaky([new Declined(true), new Declined(true), new Declined(true), new Declined(true)])
      const twice = yield* Effect.exit(retry<Declined>({ schedule: Schedule.recurs(2), isRetryable: () => true })(exhausted.attempt))
      assert.isTrue(Exit.isFailure(twice))
      assert.strictEqual(exhausted.runs.count, 3)
    }))

  it.effect("a defect is never retried", () =>
    Effect.gen(function*() {
      const runs = { count: 0 }
      const dying = Effect.suspend(() => (runs.count++, Effect.die(new Error("bug"))))
      const exit = yield* Effect.exit(retry<never>({ schedule: Schedule.recurs(5), isRetryable: () => true })(dying))
      assert.isTrue(Exit.hasDies(exit))
      assert.strictEqual(runs.count, 1)
    }))
})
