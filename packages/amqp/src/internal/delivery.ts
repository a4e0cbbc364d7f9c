/**
 * Where a delivery gets settled: the kit's `Settlement.make` with amqplib's `basic.ack` / `basic.nack` on the
 * channel that delivered it. A delivery of a channel that has since closed is never settled on another one
 * (its settlement is an `AckError` of reason `BrokerClosed`: the broker redelivers it). `nack({ delay })`
 * republishes a copy to a per-delay TTL retry queue that dead-letters it back to the work queue (no plugin),
 * then acks the original; when the copy cannot be scheduled, the original is requeued at once instead.
 */
import type { Channel, ConsumeMessage } from "amqplib"
import type { Broker, Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import { Duration, Effect } from "effect"
import * as Channels from "./channel.ts"
import * as AmqpEnvelope from "./envelope.ts"
import * as AmqpErrors from "./errors.ts"

/** What the deliveries of one subscription share. */
export interface Context {
  readonly destination: string
  readonly queue: string
  /** Nacks (requeue) seen in this process per message id, for classic queues without a delivery count. */
  readonly nacks: Map<string, number>
  /** Publishes the delayed copy of a delivery (its retry queue, then the work queue after `delayMillis`). */
  readonly scheduleRetry: (envelope: Envelope.Envelope, delayMillis: number) => Effect.Effect<void, { readonly reason: Errors.Reason }>
}

/** A delivery of a subscription, with `release`: a requeue that does not count as a failed attempt. */
export interface Delivery extends Broker.RawDelivery {
  readonly release: Effect.Effect<void, Errors.AckError>
}

const maxTrackedNacks = 10_000

/**
 * The attempt of a delivery: the broker's `x-delivery-count` on quorum queues; on classic queues the
 * requeues this process saw (at least one when the broker says `redelivered`); plus the attempt a delayed
 * retry's copy carries.
 */
export const attemptOf = (message: ConsumeMessage, nacks: ReadonlyMap<string, number>): number => {
  const base = AmqpEnvelope.baseAttempt(message)
  const deliveryCount = message.properties.headers?.["x-delivery-count"]
  if (typeof deliveryCount === "number") return base + deliveryCount
  if (!message.fields.redelivered) return base
  const id = AmqpEnvelope.carriedId(message)
  return base + Math.max(1, (id === undefined ? undefined : nacks.get(id)) ?? 1)
}

const ackError = (destination: string, reason: Errors.Reason, cause?: unknown) =>
  new Errors.AckError({ destination, reason, ...(cause === undefined ? {} : { cause }) })

const onChannel = (destination: string, operation: () => void): Effect.Effect<void, Errors.AckError> =>
  Effect.try({ try: operation, catch: (error) => ackError(destination, AmqpErrors.reasonOf(error), error) })

/** Builds the settle-once delivery of a message on the channel that delivered it. */
export const make = (
  message: ConsumeMessage,
  watched: Channels.Watched<Channel>,
  context: Context,
  now: () => number
): Delivery => {
  const { destination, nacks } = context
  const envelope = AmqpEnvelope.toEnvelope(message, destination, attemptOf(message, nacks), now)
  const id = AmqpEnvelope.carriedId(message)
  const ack = onChannel(destination, () => {
    watched.channel.ack(message)
    if (message.fields.redelivered && id !== undefined) nacks.delete(id)
  })
  const requeue = (counted: boolean) =>
    onChannel(destination, () => {
      if (counted && id !== undefined) {
        if (nacks.size > maxTrackedNacks) nacks.clear()
        nacks.set(id, (nacks.get(id) ?? 0) + 1)
      }
      watched.channel.nack(message, false, true)
    })
  const later = (delayMillis: number) =>
    context.scheduleRetry(envelope, delayMillis).pipe(Effect.matchEffect({
      onSuccess: () => ack,
      // Never leave the delivery unsettled on a live channel (it would hold a prefetch slot until the channel
      // closes): without a delayed copy, requeue it now.
      onFailure: (e) =>
        Effect.logWarning(
          `could not schedule the delayed retry of message ${envelope.id} from ${context.queue} ` +
            `(${e.reason.message}); requeueing it immediately instead`
        ).pipe(
          Effect.andThen(requeue(true)),
          Effect.mapError((requeueError) =>
            ackError(destination, Errors.reason(
              requeueError.kind,
              `scheduling the delayed retry failed (${e.reason.message}) and requeueing failed: ${requeueError.reason.message}`
            ), requeueError)
          )
        )
    }))
  const settlement = Settlement.make(destination, {
    ack,
    nack: (options) => {
      const delayMillis = options?.delay === undefined ? 0 : Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.delay)))
      return delayMillis > 0 ? later(delayMillis) : requeue(true)
    },
    isLive: () => Channels.isOpen(watched)
  })
  return { envelope, ack: settlement.ack, nack: settlement.nack, release: settlement.once.run(requeue(false)) }
}
