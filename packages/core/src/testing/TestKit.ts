/**
 * Helpers for deterministic tests under `TestClock`.
 *
 * @since 0.1.0
 */
import { Duration, Effect } from "effect"
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
 * @since 0.1.0
 */
export const advanceUntil = <E, R>(
  condition: Effect.Effect<boolean, E, R>,
  options: { readonly within: Duration.Input; readonly step?: Duration.Input }
): Effect.Effect<boolean, E, R> =>
  Effect.gen(function*() {
    const within = Duration.toMillis(Duration.fromInputUnsafe(options.within))
    const step = Duration.fromInputUnsafe(options.step ?? "10 millis")
    let elapsed = 0
    while (true) {
      yield* settle()
      if (yield* condition) return true
      if (elapsed >= within) return false
      yield* TestClock.adjust(step)
      elapsed += Duration.toMillis(step)
    }
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
 * @since 0.1.0
 */
export const advance = (duration: Duration.Input, step: Duration.Input = "10 millis"): Effect.Effect<void> =>
  Effect.asVoid(advanceUntil(Effect.succeed(false), { within: duration, step }))
