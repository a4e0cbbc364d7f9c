// A dead-letter stage stand-in for the consumer stages' unit tests: records what it was asked to park.
import { Effect } from "effect"
import type { Failure } from "../../src/internal/deadLetter.ts"
import { Outcome } from "../../src/internal/consumer/outcome.ts"
import type { Park } from "../../src/internal/consumer/step.ts"
import type { Delivery } from "../../src/Subscriber.ts"

export const fakePark = <A>() => {
  const parked: Array<{ readonly delivery: Delivery<A>; readonly failure: Failure }> = []
  const park: Park<A> = (delivery, failure) =>
    Effect.sync(() => {
      parked.push({ delivery, failure })
      return Outcome.DeadLettered({ destination: "orders.dlq", form: "full", failure })
    })
  return { park, parked }
}
