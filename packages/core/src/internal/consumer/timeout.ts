/**
 * The timeout stage: an attempt that runs longer than `handlerTimeout` is interrupted and fails with a
 * `HandlerTimeoutError` (retryable by default, so the retry stage sees it like any other error).
 */
import { Duration, Effect } from "effect"
import { HandlerTimeoutError } from "../../Errors.ts"

/**
 * Bounds one handler attempt in time. Without a timeout the attempt is returned as is; the timeout's
 * options are built once per consumer, not per message.
 */
export const timeout = (handlerTimeout: Duration.Duration | undefined, destination: string) => {
  if (handlerTimeout === undefined) return <E, R>(attempt: Effect.Effect<unknown, E, R>) => attempt
  const timeoutMillis = Duration.toMillis(handlerTimeout)
  const options = {
    duration: handlerTimeout,
    orElse: () => Effect.fail(new HandlerTimeoutError({ destination, timeoutMillis }))
  }
  return <E, R>(attempt: Effect.Effect<unknown, E, R>): Effect.Effect<unknown, E | HandlerTimeoutError, R> =>
    Effect.timeoutOrElse(attempt, options)
}
