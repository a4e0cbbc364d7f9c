/**
 * Where an SQS delivery gets settled: `Settlement.make` over the batched settle calls. `ack` deletes the
 * message; `nack` makes it visible again after the delay (0: now), through `ChangeMessageVisibility` (SQS's
 * longest visibility is 12 hours: longer delays are clamped to it). A delivery whose lease is gone (its
 * subscription closed and gave it back) sends nothing and fails with `AckError` reason `BrokerClosed`: the
 * message was already made visible for others.
 */
import type { Broker, Envelope } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import { Duration, Effect } from "effect"
import type { Errors } from "@switchyard/core"

/** What a delivery needs from its subscription. */
export interface Handlers {
  readonly ack: (handle: string) => Effect.Effect<void, Errors.AckError>
  readonly nack: (handle: string, seconds: number) => Effect.Effect<void, Errors.AckError>
  readonly isLive: (handle: string) => boolean
}

/** The visibility a nack sets: its delay in whole seconds (rounded up). */
export const nackSeconds = (options: Broker.NackOptions | undefined): number =>
  options?.delay === undefined ? 0 : Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(options.delay)) / 1000)

/**
 * The delivery limit of a queue whose redrive policy moves a message after `maxReceiveCount` receives: the
 * last receive (attempt `maxReceiveCount`) exceeds it, so the consumer parks that one with a reason instead of
 * letting SQS move it without one.
 */
export const deliveryLimitOf = (maxReceiveCount: number | undefined): number | undefined =>
  maxReceiveCount !== undefined && maxReceiveCount >= 2 ? maxReceiveCount - 1 : undefined

/** A delivery of one received message. */
export interface SqsDelivery extends Broker.RawDelivery {
  readonly handle: string
  readonly once: Settlement.Once
}

/** The delivery of a received message with receipt handle `handle`. */
export const make = (
  destination: string,
  handle: string,
  envelope: Envelope.Envelope,
  deliveryLimit: number | undefined,
  handlers: Handlers
): SqsDelivery => {
  const settled = Settlement.make(destination, {
    ack: Effect.suspend(() => handlers.ack(handle)),
    nack: (options) => Effect.suspend(() => handlers.nack(handle, nackSeconds(options))),
    isLive: () => handlers.isLive(handle)
  })
  return { envelope, ack: settled.ack, nack: settled.nack, deliveryLimit, handle, once: settled.once }
}

/** Marks a delivery settled without sending anything (it was given back before anyone took it). */
export const abandon = (delivery: SqsDelivery): Effect.Effect<void> => Effect.ignore(delivery.once.run(Effect.void))
