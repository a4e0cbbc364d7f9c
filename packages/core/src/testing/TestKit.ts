/**
 * Helpers for deterministic tests under `TestClock`.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Schedule } from "effect"
import { TestClock } from "effect/testing"

/**
 * Lets every runnable fiber make progress (the scheduler is single threaded and deterministic).
 *
 * @example
 * ```ts
 * import { Effect, Fiber } from "effect"
 * import { TestKit } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   let ran = false
 *   const fiber = yield* Effect.forkChild(Effect.sync(() => { ran = true }))
 *   yield* TestKit.settle() // the forked fiber has run, no clock moved
 *   yield* Fiber.join(fiber)
 *   return ran
 * })
 * ```
 * @category TestClock
 * @since 0.1.0
 */
export const settle = (rounds = 50): Effect.Effect<void> =>
  Effect.forEach(Array.from({ length: rounds }), () => Effect.yieldNow, { discard: true })

/**
 * Advances the test clock in steps, letting fibers run between steps, until `condition` holds or
 * `within` of virtual time has passed. Returns whether the condition held.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestKit } from "@switchyard/core/testing"
 * let done = false
 * const waited = TestKit.advanceUntil(Effect.sync(() => done), { within: "10 seconds" })
 * ```
 * @category TestClock
 * @since 0.1.0
 */
export const advanceUntil = <E, R>(
  condition: Effect.Effect<boolean, E, R>,
  options: { readonly within: Duration.Input; readonly step?: Duration.Input }
): Effect.Effect<boolean, E, R> =>
  Effect.suspend(() => {
    const within = Duration.toMillis(Duration.fromInputUnsafe(options.within))
    const step = Duration.fromInputUnsafe(options.step ?? "10 millis")
    const from = (elapsed: number): Effect.Effect<boolean, E, R> =>
      Effect.andThen(settle(), condition).pipe(
        Effect.flatMap((held) =>
          held ? Effect.succeed(true)
          : elapsed >= within ? Effect.succeed(false)
          : Effect.andThen(TestClock.adjust(step), Effect.suspend(() => from(elapsed + Duration.toMillis(step))))
        )
      )
    return from(0)
  })

/**
 * Advances the test clock by `duration` in steps, letting fibers run between steps.
 *
 * @example
 * ```ts
 * import { TestKit } from "@switchyard/core/testing"
 * // Under TestClock (it.effect): five virtual seconds pass in 100 ms steps, fibers running in between.
 * const fiveSecondsLater = TestKit.advance("5 seconds", "100 millis")
 * ```
 * @category TestClock
 * @since 0.1.0
 */
export const advance = (duration: Duration.Input, step: Duration.Input = "10 millis"): Effect.Effect<void> =>
  Effect.asVoid(advanceUntil(Effect.succeed(false), { within: duration, step }))

/**
 * A name no other test run uses (a queue, a stream, a topic, a group): `prefix` + a random suffix, in the
 * characters every broker accepts in a name (`[a-z0-9.-]`). Every adapter's tests name their destinations
 * with it, so runs never see each other's messages.
 *
 * @example
 * ```ts
 * import { TestKit } from "@switchyard/core/testing"
 * const topic = TestKit.uniqueName("sy-test.orders") // e.g. "sy-test.orders.k3x9q2mfa1"
 * ```
 * @category real brokers
 * @since 0.3.0
 */
export const uniqueName = (prefix: string): string =>
  `${prefix}.${globalThis.crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`

/**
 * Polls `probe` in real time until it satisfies `done` or `within` has passed, and returns the last value
 * seen (the caller asserts on it, so a timeout shows what was reached): the shared "wait until the broker
 * has N messages" of every adapter's tests. Use it on real brokers; under `TestClock` use
 * {@link advanceUntil}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TestKit } from "@switchyard/core/testing"
 * declare const received: Effect.Effect<number>
 * const atLeast100 = TestKit.eventually(received, (n) => n >= 100, { within: "10 seconds" })
 * ```
 * @category real brokers
 * @since 0.3.0
 */
export const eventually = <A, E, R>(
  probe: Effect.Effect<A, E, R>,
  done: (value: A) => boolean,
  options: { readonly within: Duration.Input; readonly interval?: Duration.Input }
): Effect.Effect<A, E, R> =>
  probe.pipe(
    Effect.repeat({
      schedule: Schedule.spaced(options.interval ?? "20 millis").pipe(
        Schedule.upTo({ duration: options.within })
      ),
      until: done
    })
  )
