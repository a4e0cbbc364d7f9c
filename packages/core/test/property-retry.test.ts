/**
 * Retry timing of the consumer runtime under TestClock: the handler attempts follow the user's
 * `Schedule` exactly (exponential, jittered, capped, combined), and exhaustion dead-letters the message
 * with the attempt count. No real waiting: every delay is virtual.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Duration, Effect, Fiber, References, Schedule, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { Consumer, Headers as H, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"

const Job = Schema.Struct({ id: Schema.String })
const jobs = Topic.make("jobs", Job, { key: (j) => j.id })

/** The in-memory stack, with the consumer's info/warning logs silenced. */
const memory = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.provide(Switchyard.layerMemory({ partitions: 4 })),
    Effect.provideService(References.MinimumLogLevel, "Error")
  )

class Boom extends Data.TaggedError("Boom")<{ readonly attempt: number }> {}
class Fatal extends Data.TaggedError("Fatal")<{}> {}

interface Run {
  /** Virtual timestamps (ms) of every handler attempt, relative to the first one. */
  readonly gaps: ReadonlyArray<number>
  readonly times: ReadonlyArray<number>
  readonly dlq: ReadonlyArray<{ readonly id: string; readonly headers: Readonly<Record<string, string>> }>
  readonly lag: number
  readonly completed: number
}

/**
 * Publishes one job, runs a consumer whose handler fails every attempt (with `fail`), waits (virtually)
 * until the job is dead-lettered, then keeps the clock running a while to prove no attempt follows.
 */
const runFailing = <E>(
  options: Consumer.Options<E>,
  fail: (attempt: number) => Effect.Effect<never, E>,
  within: Duration.Input = "2 minutes"
) =>
  Effect.gen(function*() {
    const inspect = yield* MemoryBroker.MemoryBroker
    const times: Array<number> = []
    let completed = 0
    yield* Publisher.publish(jobs, { id: "j-1" })
    const consumer = yield* Consumer.run(
      jobs,
      () =>
        Effect.gen(function*() {
          times.push(yield* Clock.currentTimeMillis)
          yield* fail(times.length)
          completed++
        }),
      { group: "workers", ...options }
    ).pipe(Effect.forkChild)
    const dead = yield* TestKit.advanceUntil(
      Effect.map(inspect.deadLetters("jobs"), (d) => d.length > 0),
      { within }
    )
    assert.isTrue(dead, `not dead-lettered within ${Duration.format(Duration.fromInputUnsafe(within))}; attempts at ${JSON.stringify(times)}`)
    const attemptsAtDlq = times.length
    // Nothing else happens afterwards: the message is settled.
    yield* TestKit.advance("5 seconds", "100 millis")
    assert.strictEqual(times.length, attemptsAtDlq, "an attempt happened after the message was dead-lettered")
    const dlq = (yield* inspect.deadLetters("jobs")).map((e) => ({ id: e.id, headers: e.headers }))
    const lag = yield* inspect.lag("jobs", "workers")
    yield* Fiber.interrupt(consumer)
    const run: Run = { times, gaps: times.slice(1).map((t, i) => t - times[i]!), dlq, lag, completed }
    return run
  }).pipe(memory)

const boom = (attempt: number) => Effect.fail(new Boom({ attempt }))

const relative = (times: ReadonlyArray<number>) => times.map((t) => t - times[0]!)

const assertDeadLettered = (run: Run, attempts: number, errorTag: string) => {
  assert.strictEqual(run.dlq.length, 1)
  const headers = run.dlq[0]!.headers
  assert.strictEqual(run.dlq[0]!.id.length > 0, true)
  assert.strictEqual(headers[H.deadLetterAttempts], String(attempts))
  assert.strictEqual(headers[H.deadLetterErrorTag], errorTag)
  assert.strictEqual(headers[H.deadLetterOriginDestination], "jobs")
  assert.strictEqual(headers[H.deadLetterOriginGroup], "workers")
  // Dead-lettered messages are acknowledged.
  assert.strictEqual(run.lag, 0)
  assert.strictEqual(run.completed, 0)
}

describe("consumer retry timing follows the Schedule", () => {
  it.effect("exponential 100ms × 2^k: attempts at 0, 100, 300, 700, 1500, then DLQ with attempts=5", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        { retry: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 4 })) },
        boom
      )
      assert.deepStrictEqual(relative(run.times), [0, 100, 300, 700, 1500])
      assertDeadLettered(run, 5, "Boom")
    }))

  it.effect("exponential with factor 3: gaps 50, 150, 450", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        { retry: Schedule.exponential("50 millis", 3).pipe(Schedule.upTo({ times: 3 })) },
        boom
      )
      assert.deepStrictEqual(run.gaps, [50, 150, 450])
      assertDeadLettered(run, 4, "Boom")
    }))

  it.effect("no retry policy: exactly one attempt, dead-lettered with attempts=1", () =>
    Effect.gen(function*() {
      const run = yield* runFailing({}, boom)
      assert.deepStrictEqual(run.gaps, [])
      assertDeadLettered(run, 1, "Boom")
    }))

  it.effect("jittered: every gap lies within [0.8, 1.2] × the exponential base delay", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        { retry: Schedule.exponential("100 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 6 })) },
        boom
      )
      assert.strictEqual(run.gaps.length, 6)
      run.gaps.forEach((gap, k) => {
        const base = 100 * 2 ** k
        assert.isAtLeast(gap, 0.8 * base - 1e-6, `gap ${k} = ${gap}`)
        assert.isAtMost(gap, 1.2 * base + 1e-6, `gap ${k} = ${gap}`)
      })
      // Jitter is really applied: not every gap is the plain base delay.
      assert.isTrue(run.gaps.some((gap, k) => Math.abs(gap - 100 * 2 ** k) > 1e-9), `gaps ${JSON.stringify(run.gaps)}`)
      assertDeadLettered(run, 7, "Boom")
    }))

  it.effect("Schedule.min with a spaced cap: delays are min(100 × 2^k, 250)", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        {
          retry: Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("250 millis")]).pipe(
            Schedule.upTo({ times: 5 })
          )
        },
        boom
      )
      assert.deepStrictEqual(run.gaps, [100, 200, 250, 250, 250])
      assertDeadLettered(run, 6, "Boom")
    }))

  it.effect("Schedule.max with recurs: the count cap of recurs and the delays of exponential", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        { retry: Schedule.max([Schedule.exponential("100 millis"), Schedule.recurs(2)]) },
        boom
      )
      assert.deepStrictEqual(relative(run.times), [0, 100, 300])
      assertDeadLettered(run, 3, "Boom")
    }))

  it.effect("fibonacci 100ms: gaps 100, 100, 200, 300, 500", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        { retry: Schedule.fibonacci("100 millis").pipe(Schedule.upTo({ times: 5 })) },
        boom
      )
      assert.deepStrictEqual(run.gaps, [100, 100, 200, 300, 500])
      assertDeadLettered(run, 6, "Boom")
    }))

  it.effect("upTo({ duration }): retries stop once the schedule's elapsed time exceeds the budget", () =>
    Effect.gen(function*() {
      // Steps happen at elapsed 0, 100, 300, 700 (each allowed, ≤ 1s) and 1500 (> 1s: done).
      const run = yield* runFailing(
        { retry: Schedule.exponential("100 millis").pipe(Schedule.upTo({ duration: "1 second" })) },
        boom
      )
      assert.deepStrictEqual(relative(run.times), [0, 100, 300, 700, 1500])
      assertDeadLettered(run, 5, "Boom")
    }))

  it.effect("a handler that recovers before the schedule is exhausted is acked, never dead-lettered", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const times: Array<number> = []
      let completed = 0
      yield* Publisher.publish(jobs, { id: "j-2" })
      const consumer = yield* Consumer.run(
        jobs,
        () =>
          Effect.gen(function*() {
            times.push(yield* Clock.currentTimeMillis)
            if (times.length < 3) return yield* Effect.fail(new Boom({ attempt: times.length }))
            completed++
          }),
        { group: "workers", retry: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 5 })) }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => completed === 1), { within: "10 seconds" }))
      yield* TestKit.advance("2 seconds", "100 millis")
      assert.deepStrictEqual(relative(times), [0, 100, 300])
      assert.strictEqual(completed, 1)
      assert.strictEqual((yield* inspect.deadLetters("jobs")).length, 0)
      assert.strictEqual(yield* inspect.lag("jobs", "workers"), 0)
      yield* Fiber.interrupt(consumer)
    }).pipe(memory))

  it.effect("isRetryable = false: a fatal error is dead-lettered at once, without waiting for the schedule", () =>
    Effect.gen(function*() {
      const run = yield* runFailing(
        {
          retry: { schedule: Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 10 })), isRetryable: (error: { readonly _tag: string }) => error._tag !== "Fatal" }
        },
        (attempt): Effect.Effect<never, Boom | Fatal> =>
          attempt < 3 ? Effect.fail(new Boom({ attempt })) : Effect.fail(new Fatal())
      )
      // Two retryable failures (spaced 1s), then the fatal one stops the retries.
      assert.deepStrictEqual(relative(run.times), [0, 1000, 2000])
      assertDeadLettered(run, 3, "Fatal")
    }))

  it.effect("handlerTimeout: a handler sleeping past the timeout fails with HandlerTimeoutError, is retried, then DLQ", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const starts: Array<number> = []
      let completed = 0
      let interrupted = 0
      yield* Publisher.publish(jobs, { id: "slow" })
      const consumer = yield* Consumer.run(
        jobs,
        () =>
          Effect.gen(function*() {
            starts.push(yield* Clock.currentTimeMillis)
            yield* Effect.sleep("1 second")
            completed++
          }).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++))),
        {
          group: "workers",
          handlerTimeout: "200 millis",
          retry: Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 2 }))
        }
      ).pipe(Effect.forkChild)
      assert.isTrue(
        yield* TestKit.advanceUntil(Effect.map(inspect.deadLetters("jobs"), (d) => d.length > 0), { within: "10 seconds" })
      )
      yield* TestKit.advance("3 seconds", "100 millis")
      // attempt k starts at k × (timeout 200 + spacing 100)
      assert.deepStrictEqual(relative(starts), [0, 300, 600])
      assert.strictEqual(completed, 0, "a timed-out handler must not run to completion")
      assert.strictEqual(interrupted, 3, "each timed-out attempt is interrupted")
      const [dead] = yield* inspect.deadLetters("jobs")
      assert.strictEqual(dead!.headers[H.deadLetterErrorTag], "HandlerTimeoutError")
      assert.strictEqual(dead!.headers[H.deadLetterAttempts], "3")
      assert.match(dead!.headers[H.deadLetterReason]!, /200ms/)
      // Dead-lettered at the moment the third attempt timed out (600 + 200).
      assert.strictEqual(Number(dead!.headers[H.deadLetterAt]) - starts[0]!, 800)
      assert.strictEqual(yield* inspect.lag("jobs", "workers"), 0)
      yield* Fiber.interrupt(consumer)
    }).pipe(memory))

  it.effect("handlerTimeout: a handler finishing just within the timeout succeeds", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      let completed = 0
      yield* Publisher.publish(jobs, { id: "quick" })
      const consumer = yield* Consumer.run(
        jobs,
        () => Effect.sleep("199 millis").pipe(Effect.andThen(Effect.sync(() => completed++))),
        { group: "workers", handlerTimeout: "200 millis" }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => completed === 1), { within: "5 seconds" }))
      yield* TestKit.advance("1 second")
      assert.strictEqual((yield* inspect.deadLetters("jobs")).length, 0)
      assert.strictEqual(yield* inspect.lag("jobs", "workers"), 0)
      yield* Fiber.interrupt(consumer)
    }).pipe(memory))
})

describe("retry timing as a property", () => {
  it("exponential(base, factor) capped at n retries: attempt k at base × (factor^k − 1)/(factor − 1)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 2, max: 3 }),
        fc.integer({ min: 0, max: 5 }),
        async (base, factor, retries) => {
          const run = await Effect.runPromise(
            runFailing(
              { retry: Schedule.exponential(`${base} millis`, factor).pipe(Schedule.upTo({ times: retries })) },
              boom,
              "10 minutes"
            ).pipe(Effect.provide(TestClock.layer()), Effect.scoped)
          )
          const expected = Array.from({ length: retries + 1 }, (_, k) => base * (factor ** k - 1) / (factor - 1))
          assert.deepStrictEqual(relative(run.times), expected)
          assertDeadLettered(run, retries + 1, "Boom")
        }
      ),
      { numRuns: 20 }
    )
  })

  it("jittered exponential: every gap within [0.8, 1.2] × base × factor^k", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 10, max: 200 }),
        fc.integer({ min: 1, max: 6 }),
        async (base, retries) => {
          const run = await Effect.runPromise(
            runFailing(
              {
                retry: Schedule.exponential(`${base} millis`).pipe(Schedule.jittered, Schedule.upTo({ times: retries }))
              },
              boom,
              "10 minutes"
            ).pipe(Effect.provide(TestClock.layer()), Effect.scoped)
          )
          assert.strictEqual(run.gaps.length, retries)
          run.gaps.forEach((gap, k) => {
            const delay = base * 2 ** k
            assert.isTrue(gap >= 0.8 * delay - 1e-6 && gap <= 1.2 * delay + 1e-6, `gap ${k}: ${gap} vs ${delay}`)
          })
          assertDeadLettered(run, retries + 1, "Boom")
        }
      ),
      { numRuns: 20 }
    )
  })
})
