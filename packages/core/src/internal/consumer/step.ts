/**
 * The shape every consumer stage shares. A {@link Step} takes one delivery to its {@link Outcome}; a stage
 * is a function from the next step to a step (middleware), composed once when the consumer starts, so a
 * message passes through plain function calls: no fiber, span or closure per stage.
 */
import { Effect } from "effect"
import { describe } from "../../Envelope.ts"
import type { Delivery } from "../../Subscriber.ts"
import type { Failure } from "../deadLetter.ts"
import type { Outcome } from "./outcome.ts"

/** What happens to one delivery from here on. */
export type Step<A, E, R> = (delivery: Delivery<A>) => Effect.Effect<Outcome, E, R>

/** What happens to a decoded delivery from here on. */
export type ValueStep<A, R> = (delivery: Delivery<A>, value: A) => Effect.Effect<Outcome, never, R>

/** Parks a delivery in the dead-letter destination (or nacks it when it cannot). Never fails. */
export type Park<A> = (delivery: Delivery<A>, failure: Failure) => Effect.Effect<Outcome>

/**
 * Runs a settlement; one that fails is logged, not raised: the broker redelivers what was not settled, and
 * one message must never stop the consumer.
 */
export const settle = <A>(delivery: Delivery<A>, settlement: Effect.Effect<void, unknown>): Effect.Effect<void> =>
  Effect.catch(
    settlement,
    (error) => Effect.logWarning(`could not settle ${describe(delivery.envelope)}; the broker will redeliver it`, error)
  )

/** Acks a delivery and ends in `outcome`. */
export const ackAs = <A>(delivery: Delivery<A>, outcome: Outcome): Effect.Effect<Outcome> =>
  Effect.as(settle(delivery, delivery.ack), outcome)
