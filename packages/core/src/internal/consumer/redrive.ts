/**
 * The redrive stage. A redriven copy (`DeadLetters.redrive`) names the group it is meant for: another group
 * acks it without running its handler (it handled or parked the message already); the named group runs it
 * even though its ledger recorded the id (it had dead-lettered it), then remembers it as usual.
 */
import { Effect, Metric } from "effect"
import type { Envelope } from "../../Envelope.ts"
import * as H from "../../Headers.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import { redriveForAnotherGroup } from "./outcome.ts"
import { ackAs, type Step } from "./step.ts"

/**
 * The ledger key of one redrive of a message (a redriven copy, by its `x-switchyard-redriven-at`), or
 * `undefined` for a delivery that is not a redriven copy.
 */
export const redriveKey = (envelope: Envelope): string | undefined =>
  envelope.headers[H.redriveGroup] === undefined
    ? undefined
    : `${envelope.id}#redriven-at:${envelope.headers[H.redrivenAt] ?? ""}`

const notForThisGroup = <A>(delivery: Delivery<A>) =>
  Effect.andThen(Metric.update(Telemetry.redrivesIgnored, 1), ackAs(delivery, redriveForAnotherGroup))

/** Acks, without running the rest, a redriven copy meant for another group than `group`. */
export const redrive = (group: string) => <A, E, R>(next: Step<A, E, R>): Step<A, E, R> => (delivery) => {
  const redriveGroup = delivery.envelope.headers[H.redriveGroup]
  return redriveGroup !== undefined && redriveGroup !== group ? notForThisGroup(delivery) : next(delivery)
}
