/**
 * The decode stage: the codec already ran (`Subscriber.decode`, synchronous, a `Result` on the delivery);
 * this stage decides what an undecodable delivery becomes, and hands a decoded one on with its value.
 */
import { Effect, Result } from "effect"
import { describe } from "../../Envelope.ts"
import type { DecodeError } from "../../Errors.ts"
import type { Delivery } from "../../Subscriber.ts"
import type { DecodeConfig } from "./options.ts"
import { type Outcome, Outcome as O, unknownType } from "./outcome.ts"
import { ackAs, type Park, type Step, type ValueStep } from "./step.ts"

/**
 * What an undecodable delivery becomes: an unknown event type (see `Router`) is ignored or dead-lettered
 * (`onUnknownType`); any other failure is skipped (acked), fails the consumer, or is dead-lettered
 * (`onFailure`).
 */
export const undecodable = <A>(config: DecodeConfig, park: Park<A>) =>
(delivery: Delivery<A>, failure: DecodeError): Effect.Effect<Outcome, DecodeError> => {
  const attempts = delivery.envelope.attempt
  if (delivery.unknownType !== undefined) {
    return config.onUnknownType === "ignore"
      ? ackAs(delivery, unknownType)
      : park(delivery, { reason: failure.message, errorTag: "UnknownEventType", attempts })
  }
  switch (config.onFailure) {
    case "skip":
      return Effect.andThen(
        Effect.logWarning(`skipping undecodable ${describe(delivery.envelope)}: ${failure.message}`),
        ackAs(delivery, O.Skipped({ error: failure }))
      )
    case "fail":
      return Effect.fail(failure)
    case "dead-letter":
      return park(delivery, { reason: failure.message, errorTag: failure._tag, attempts })
  }
}

/** Hands a decoded delivery on with its value; an undecodable one ends per {@link undecodable}. */
export const decode = <A>(config: DecodeConfig, park: Park<A>) => {
  const onFailure = undecodable(config, park)
  return <R>(next: ValueStep<A, R>): Step<A, DecodeError, R> => (delivery) => {
    const value = delivery.value
    return Result.isFailure(value) ? onFailure(delivery, value.failure) : next(delivery, value.success)
  }
}
