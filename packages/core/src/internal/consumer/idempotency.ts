/**
 * The idempotency stage: asks the group's processed-id ledger before anything else, so an id the group
 * finished (handled or dead-lettered) ends the same way however often it comes back: acked as a duplicate.
 * Only stable ids count (`IncomingEnvelope.hasStableId`): an id made up per delivery names no message.
 */
import { Effect, Metric } from "effect"
import { hasStableId } from "../../adapter/IncomingEnvelope.ts"
import * as Idempotency from "../../Idempotency.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import { duplicate } from "./outcome.ts"
import { redriveKey } from "./redrive.ts"
import { ackAs, type Step } from "./step.ts"

/** Opens the ledger of a consumer group, or gives `undefined` when idempotency is off. */
export const ledger = (
  options: Idempotency.Options | undefined,
  destination: string,
  group: string
): Effect.Effect<Idempotency.Ledger | undefined> =>
  options === undefined ? Effect.succeed(undefined) : Idempotency.ledger(options, destination, group)

/**
 * Records a delivery's id as done for the group (handled or parked), so a duplicate or a redelivery ends
 * the same way. A redriven copy for this group is also recorded under its redrive, so a redelivery of the
 * copy is a duplicate too.
 */
export const remember = (ledger: Idempotency.Ledger | undefined) => <A>(delivery: Delivery<A>): Effect.Effect<void> => {
  if (ledger === undefined || !hasStableId(delivery.envelope)) return Effect.void
  const redrive = redriveKey(delivery.envelope)
  return redrive === undefined
    ? ledger.remember(delivery.envelope.id)
    : Effect.andThen(ledger.remember(delivery.envelope.id), ledger.remember(redrive))
}

const skipDuplicate = <A>(delivery: Delivery<A>) =>
  Effect.andThen(Metric.update(Telemetry.duplicates, 1), ackAs(delivery, duplicate))

/**
 * Acks a delivery whose id the group finished, without running the rest. Without a ledger the stage is the
 * next step itself. For this group's redriven copy the ledger is asked about this redrive, not the id (which
 * was recorded when the message was parked).
 */
export const idempotency = (ledger: Idempotency.Ledger | undefined) => <A, E, R>(next: Step<A, E, R>): Step<A, E, R> => {
  if (ledger === undefined) return next
  return (delivery) => {
    if (!hasStableId(delivery.envelope)) return next(delivery)
    const key = redriveKey(delivery.envelope) ?? delivery.envelope.id
    return Effect.flatMap(ledger.seen(key), (seen) => seen ? skipDuplicate(delivery) : next(delivery))
  }
}
