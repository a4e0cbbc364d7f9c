/**
 * The retry stage: re-runs a failed handler attempt per the user's `Schedule`, while the error is
 * retryable. Defects and interruptions are never retried (`Effect.retry` only sees typed errors).
 */
import { Effect, Predicate } from "effect"
import type { HandlerTimeoutError } from "../../Errors.ts"
import type { RetryConfig } from "./options.ts"

/**
 * Every typed error is retryable, except one that says it is not (an `isRetryable` property that is
 * `false`, such as a broker error of a fatal kind).
 */
export const defaultIsRetryable = (error: unknown): boolean =>
  !(Predicate.hasProperty(error, "isRetryable") && error.isRetryable === false)

/**
 * Wraps one handler attempt in the retry policy. Without a schedule the attempt is returned as is. The
 * retry options are built once per consumer, not per message.
 */
export const retry = <E>(config: Pick<RetryConfig<E>, "schedule" | "isRetryable">) => {
  const schedule = config.schedule
  if (schedule === undefined) return <R>(attempt: Effect.Effect<unknown, E | HandlerTimeoutError, R>) => attempt
  const options = { schedule, while: config.isRetryable }
  return <R>(attempt: Effect.Effect<unknown, E | HandlerTimeoutError, R>): Effect.Effect<unknown, E | HandlerTimeoutError, R> =>
    Effect.retry(attempt, options)
}
