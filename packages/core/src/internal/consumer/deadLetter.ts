/**
 * The dead-letter stage: parks what the consumer cannot handle (undecodable, past the delivery limit,
 * handler failed for good) in the dead-letter destination with the reason, then acks it. A dead letter the
 * broker refuses for good is sent in smaller forms (`internal/deadLetter.ts`); one that cannot be published
 * at all is nacked with a delay, never acked.
 */
import { Cause, Clock, Effect, Metric, Option } from "effect"
import type { BrokerShape } from "../../Broker.ts"
import type { Envelope, OutgoingMessage } from "../../Envelope.ts"
import { describe } from "../../Envelope.ts"
import type { PublishError } from "../../Errors.ts"
import * as H from "../../Headers.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import * as DeadLetter from "../deadLetter.ts"
import type { DeadLetterConfig } from "./options.ts"
import { Outcome } from "./outcome.ts"
import { ackAs, type Park, settle } from "./step.ts"

/**
 * The dead letter of a redriven copy that failed again: without the redrive-group header (a consumer of the
 * dead-letter destination must not take it for a copy meant for another group), and with a broker-level
 * dedup id of its own, so that a broker deduplicating by id (JetStream) does not swallow it as the earlier
 * dead letter of the same message by the same group. Stable per redrive (`x-switchyard-redriven-at`), so a
 * redelivered copy dead-lettered twice still leaves one.
 */
export const parkedAgain = (envelope: Envelope, message: OutgoingMessage): OutgoingMessage => {
  const redrivenAt = envelope.headers[H.redrivenAt]
  if (envelope.headers[H.redriveGroup] === undefined && redrivenAt === undefined) return message
  const { [H.redriveGroup]: _redriveGroup, ...headers } = message.headers
  return { ...message, headers, dedupId: `${message.id}.redriven.${redrivenAt ?? "?"}` }
}

/** Why a handler run failed for good, from its cause (`attempts`: runs of this message over all deliveries). */
export const failureOf = (cause: Cause.Cause<unknown>, attempts: number): DeadLetter.Failure => {
  const error = Cause.findErrorOption(cause)
  return Option.isSome(error)
    ? { reason: DeadLetter.reasonOf(error.value), errorTag: DeadLetter.errorTagOf(error.value), attempts }
    : { reason: `handler defect: ${DeadLetter.reasonOf(Cause.squash(cause))}`, errorTag: "Defect", attempts }
}

/** What the dead-letter stage needs besides its configuration. */
export interface Context<A> {
  readonly broker: Pick<BrokerShape, "publish">
  readonly group: string
  /** Records a parked delivery's id as done (idempotency), so a redelivery of it is a duplicate. */
  readonly remember: (delivery: Delivery<A>) => Effect.Effect<void>
}

const [firstForm, ...fallbackForms] = DeadLetter.forms

/** Makes the consumer's {@link Park}: publish the dead letter, then ack; nack when it cannot be published. */
export const make = <A>(config: DeadLetterConfig, context: Context<A>): Park<A> => {
  const { broker, group, remember } = context
  const nack = config.retryDelay

  /** Publishes the dead letter in `form`; a refusal for good (`!isRetryable`) falls back to the next form. */
  const publish = (
    destination: string,
    delivery: Delivery<A>,
    failure: DeadLetter.Failure,
    now: number,
    form: DeadLetter.Form,
    fallbacks: ReadonlyArray<DeadLetter.Form>
  ): Effect.Effect<DeadLetter.Form, PublishError> =>
    broker.publish(destination, [parkedAgain(delivery.envelope, DeadLetter.message(delivery.envelope, group, failure, now, form))]).pipe(
      Effect.as(form),
      Effect.catch((error) => {
        const [next, ...rest] = fallbacks
        if (error.isRetryable || next === undefined) return Effect.fail(error)
        return Effect.andThen(
          Effect.logWarning(
            `${destination} refused the ${form} dead letter of ${describe(delivery.envelope)} (${error.reason.message}); ` +
              `sending it in the ${next} form`
          ),
          publish(destination, delivery, failure, now, next, rest)
        )
      })
    )

  const parked = (delivery: Delivery<A>, destination: string, failure: DeadLetter.Failure, form: DeadLetter.Form) =>
    Effect.logWarning(
      `dead-lettered ${describe(delivery.envelope)} to ${destination}${form === "full" ? "" : ` (${form})`}: ` +
        `${failure.errorTag}: ${DeadLetter.headerValue(failure.reason, DeadLetter.maxReasonLength)}`
    ).pipe(
      Effect.andThen(Metric.update(Telemetry.deadLettered, 1)),
      Effect.andThen(remember(delivery)),
      Effect.andThen(ackAs(delivery, Outcome.DeadLettered({ destination, form, failure })))
    )

  // Never ack what could not be parked: the broker redelivers it after the delay.
  const notParked = (delivery: Delivery<A>, failure: DeadLetter.Failure, error: PublishError) =>
    Effect.logError(
      `dead-lettering ${describe(delivery.envelope)} failed${error.isRetryable ? "" : " in every form"}; nacking`,
      error
    ).pipe(
      Effect.andThen(settle(delivery, delivery.nack({ delay: nack }))),
      Effect.as(Outcome.Nacked({ failure, error }))
    )

  const destination = config.destination
  if (destination === false) {
    return (delivery, failure) => Effect.as(settle(delivery, delivery.nack()), Outcome.Nacked({ failure, error: undefined }))
  }
  return (delivery, failure) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.matchEffect(publish(destination, delivery, failure, now, firstForm, fallbackForms), {
        onFailure: (error) => notParked(delivery, failure, error),
        onSuccess: (form) => parked(delivery, destination, failure, form)
      }))
}
