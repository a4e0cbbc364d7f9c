import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import type { Handler } from "../src/Consumer.ts"
import type { HandlerTimeoutError } from "../src/Errors.ts"
import { make } from "../src/internal/consumer/handler.ts"
import type { RetryConfig } from "../src/internal/consumer/options.ts"
import { handled } from "../src/internal/consumer/outcome.ts"
import { defaultIsRetryable } from "../src/internal/consumer/retry.ts"
import * as Fake from "./helpers/fakeDelivery.ts"
import { fakePark } from "./helpers/fakePark.ts"

const once: RetryConfig<string> = { schedule: undefined, isRetryable: defaultIsRetryable, handlerTimeout: undefined }

const context = (remembers: boolean) => {
  const { park, parked } = fakePark<number>()
  const remembered: Array<string> = []
  return {
    parked,
    remembered,
    context: {
      destination: "orders",
      park,
      remember: (delivery: { readonly envelope: { readonly id: string } }) => Effect.sync(() => void remembered.push(delivery.envelope.id)),
      remembers
    }
  }
}

describe("consumer handler step", () => {
  it.effect("success: remembered (when idempotency is on), then acked as Handled", () =>
    Effect.gen(function*() {
      const { context: ctx, parked, remembered } = context(true)
      const seen: Array<number> = []
      const step = make<number, string, never>((n) => Effect.sync(() => seen.push(n)), once, ctx)
      const fake = Fake.decoded(5)
      assert.strictEqual(yield* step(fake.delivery, 5), handled)
      assert.deepStrictEqual(seen, [5])
      assert.deepStrictEqual(remembered, ["m-1"])
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
      assert.strictEqual(parked.length, 0)

      const off = context(false)
      yield* make<number, string, never>(() => Effect.void, once, off.context)(Fake.decoded(1).delivery, 1)
      assert.deepStrictEqual(off.remembered, [])
    }))

  it.effect("a failure is parked with the error and the attempts of every delivery so far; nothing acked", () =>
    Effect.gen(function*() {
      const { context: ctx, parked, remembered } = context(true)
      const fake = Fake.decoded(5, { envelope: { attempt: 3 } })
      yield* make<number, string, never>(() => Effect.fail("declined"), once, ctx)(fake.delivery, 5)
      assert.deepStrictEqual(parked.map((p) => p.failure), [{ reason: "declined", errorTag: "UnknownError", attempts: 3 }])
      assert.deepStrictEqual(fake.settlements, [])
      assert.deepStrictEqual(remembered, [])
    }))

  it.effect("a handler that throws instead of returning an effect is a defect, parked", () =>
    Effect.gen(function*() {
      const { context: ctx, parked } = context(false)
      const throwing: Handler<number, never, never> = () => {
        throw new Error("thrown before any effect")
      }
      yield* make(throwing, { ...once, isRetryable: () => true }, ctx)(Fake.decoded(1).delivery, 1)
      assert.deepStrictEqual(parked.map((p) => [p.failure.errorTag, p.failure.reason]), [["Defect", "handler defect: thrown before any effect"]])
    }))

  it.effect("retries call the handler anew each time; attempts counted in the dead letter", () =>
    Effect.gen(function*() {
      const { context: ctx, parked } = context(false)
      const calls = { count: 0 }
      const config: RetryConfig<string> = { ...once, schedule: Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 2 })) }
      const fiber = yield* make<number, string, never>(() => (calls.count++, Effect.fail("declined")), config, ctx)(
        Fake.decoded(1).delivery,
        1
      ).pipe(Effect.forkChild)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      assert.strictEqual(calls.count, 3)
      assert.deepStrictEqual(parked.map((p) => p.failure.attempts), [3])
    }))

  it.effect("a timed-out attempt is retried like any error, then succeeds", () =>
    Effect.gen(function*() {
      const { context: ctx } = context(false)
      const calls = { count: 0 }
      const config: RetryConfig<string> = {
        schedule: Schedule.recurs(3),
        isRetryable: (error: string | HandlerTimeoutError) => typeof error !== "string",
        handlerTimeout: Duration.seconds(1)
      }
      const slowThenFast = () => Effect.sleep(calls.count++ === 0 ? "10 seconds" : "10 millis")
      const fake = Fake.decoded(1)
      const fiber = yield* make<number, string, never>(slowThenFast, config, ctx)(fake.delivery, 1).pipe(Effect.forkChild)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), handled)
      assert.strictEqual(calls.count, 2)
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
    }))

  it.effect("an interrupted handler is neither acked nor parked: the interruption goes on", () =>
    Effect.gen(function*() {
      const { context: ctx, parked } = context(false)
      const fake = Fake.decoded(1)
      const exit = yield* Effect.exit(make<number, string, never>(() => Effect.interrupt, once, ctx)(fake.delivery, 1))
      assert.isTrue(Exit.hasInterrupts(exit))
      assert.deepStrictEqual(fake.settlements, [])
      assert.strictEqual(parked.length, 0)
    }))
})
