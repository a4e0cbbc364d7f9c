/**
 * The handler step: runs the user's handler on a decoded delivery through the timeout and retry stages,
 * then ends the delivery: acked (and remembered) on success, parked on a failure for good.
 */
import { Cause, Effect, Exit, Metric } from "effect"
import type { Handler } from "../../Consumer.ts"
import type { HandlerTimeoutError } from "../../Errors.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import { failureOf } from "./deadLetter.ts"
import type { RetryConfig } from "./options.ts"
import { handled, type Outcome } from "./outcome.ts"
import { retry } from "./retry.ts"
import { ackAs, type Park, type ValueStep } from "./step.ts"
import { timeout } from "./timeout.ts"

/** What the handler step needs besides the handler and its policy. */
export interface Context<A> {
  readonly destination: string
  readonly park: Park<A>
  /** Records a handled delivery's id as done (idempotency). */
  readonly remember: (delivery: Delivery<A>) => Effect.Effect<void>
  /** Whether `remember` does anything (skipped on the hot path when it does not). */
  readonly remembers: boolean
}

/** Runs `handler` on each decoded delivery per the retry configuration, and settles the delivery. */
export const make = <A, E, R>(handler: Handler<A, E, R>, config: RetryConfig<E>, context: Context<A>): ValueStep<A, R> => {
  const { park, remember } = context

  const succeeded = context.remembers
    ? (delivery: Delivery<A>) => Effect.andThen(remember(delivery), ackAs(delivery, handled))
    : (delivery: Delivery<A>) => ackAs(delivery, handled)

  // `attempts`: runs of this delivery; the dead letter counts the runs of earlier deliveries too.
  const finish = (delivery: Delivery<A>, exit: Exit.Exit<unknown, E | HandlerTimeoutError>, attempts: number) => {
    if (Exit.isSuccess(exit)) return succeeded(delivery)
    if (Cause.hasInterruptsOnly(exit.cause)) return Effect.interrupt as Effect.Effect<Outcome>
    return park(delivery, failureOf(exit.cause, delivery.envelope.attempt - 1 + attempts))
  }

  // No retry policy and no timeout: one run, no bookkeeping. `suspend` turns a handler that throws instead
  // of returning an effect into a defect like any other (dead-lettered), not a crash of the consumer.
  if (config.schedule === undefined && config.handlerTimeout === undefined) {
    return (delivery, value) =>
      Effect.flatMap(Effect.exit(Effect.suspend(() => handler(value, delivery.envelope))), (exit) => finish(delivery, exit, 1))
  }

  const timed = timeout(config.handlerTimeout, context.destination)
  const retried = retry(config)
  return (delivery, value) => {
    // Counted by this delivery's own fiber only, across its retries.
    const attempts = { count: 0 }
    const once = Effect.suspend(() => {
      attempts.count++
      return handler(value, delivery.envelope)
    })
    return Effect.flatMap(Effect.exit(retried(timed(once))), (exit) =>
      Effect.andThen(
        attempts.count > 1 ? Metric.update(Telemetry.retried, attempts.count - 1) : Effect.void,
        finish(delivery, exit, attempts.count)
      ))
  }
}
