/**
 * The delivery-limit stage. A broker that gives up after a number of deliveries declares its limit on each
 * delivery (`deliveryLimit`). A delivery past it means no earlier one was acked (crash, stall, stop, nack):
 * park it rather than run the handler again into a crash loop and have the broker drop it silently.
 */
import type { Delivery } from "../../Subscriber.ts"
import type { Failure } from "../deadLetter.ts"
import type { Park, Step } from "./step.ts"

/** The dead-letter reason of a delivery past the broker's limit. */
export const pastLimit = <A>(delivery: Delivery<A>, limit: number): Failure => ({
  reason: `delivered ${delivery.envelope.attempt} times, past the broker's limit of ${limit}: no earlier ` +
    `delivery was acked (the consumer crashed, stalled past the ack deadline, was stopped, or nacked it)`,
  errorTag: "DeliveryLimitExceeded",
  attempts: delivery.envelope.attempt - 1
})

/** Parks a delivery past its broker's delivery limit instead of running the rest. */
export const deliveryLimit = <A>(park: Park<A>) => <E, R>(next: Step<A, E, R>): Step<A, E, R> => (delivery) => {
  const limit = delivery.deliveryLimit
  return limit !== undefined && delivery.envelope.attempt > limit ? park(delivery, pastLimit(delivery, limit)) : next(delivery)
}
