/**
 * Where a delivery gets settled: the kit's `Settlement.make` with amqplib's `basic.ack` / `basic.nack` on the
 * channel that delivered it, through the channel's {@link Acks}: acks are coalesced into one
 * `basic.ack multiple` per turn of the event loop when no delivery below them is still in flight. A delivery
 * of a channel that has since closed is never settled on another one (its settlement is an `AckError` of
 * reason `BrokerClosed`: the broker redelivers it). `nack({ delay })`
 * republishes a copy to a per-delay TTL retry queue that dead-letters it back to the work queue (no plugin),
 * then acks the original; when the copy cannot be scheduled, the original is requeued at once instead.
 */
import type { Channel, ConsumeMessage, Message } from "amqplib"
import type { Broker, Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import { Duration, Effect, Result } from "effect"
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

/** The channel operations {@link Acks} needs (amqplib's `Channel`). */
export interface AckChannel {
  readonly ack: (message: Message, allUpTo?: boolean) => void
  readonly nack: (message: Message, allUpTo?: boolean, requeue?: boolean) => void
}

/**
 * The settlements of one channel on the wire. A consumer's ack is held until the end of the current turn
 * of the event loop (`setImmediate`), then the acks of a turn go out as one `basic.ack multiple` for the
 * highest acked delivery tag below which no delivery is still in flight (every lower tag was acked or
 * nacked: `multiple` settles nothing else), and one plain `basic.ack` each for the acks above a delivery
 * still in flight (never held back behind a slow one: they free prefetch slots now). A nack goes out at
 * once, after the held acks. Delivery tags are the channel's: they grow by one per delivery.
 * What was held when the channel closed is not sent: the broker redelivers it (at-least-once).
 */
export class Acks {
  /** Delivered, not yet acked or nacked by the consumer. */
  readonly #inFlight = new Set<number>()
  /** Acked by the consumer, not yet sent. */
  readonly #held = new Map<number, Message>()
  /** Every tag below it is out of flight. */
  #low = 1
  #highest = 0
  #flushScheduled = false

  constructor(
    private readonly channel: AckChannel,
    private readonly isOpen: () => boolean = () => true,
    private readonly schedule: (flush: () => void) => void = setImmediate
  ) {}

  /** A delivery arrived (before it can be settled). */
  delivered(message: Message): void {
    const tag = message.fields.deliveryTag
    this.#inFlight.add(tag)
    if (tag > this.#highest) this.#highest = tag
  }

  /** The consumer acked: sent with the others of this turn. */
  ack(message: Message): void {
    const tag = message.fields.deliveryTag
    this.#inFlight.delete(tag)
    this.#held.set(tag, message)
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    this.schedule(() => this.flush())
  }

  /** The consumer nacked (requeue or not): sent now, after the acks held (throws as amqplib does). */
  nack(message: Message, requeue: boolean): void {
    this.flush()
    this.#inFlight.delete(message.fields.deliveryTag)
    this.channel.nack(message, false, requeue)
  }

  /** Sends the acks held (before the channel is closed, and at the end of each turn). */
  flush(): void {
    this.#flushScheduled = false
    if (this.#held.size === 0) return
    while (this.#low <= this.#highest && !this.#inFlight.has(this.#low)) this.#low++
    const held = [...this.#held.values()]
    this.#held.clear()
    // a channel that closed settles nothing more: the broker redelivers what it held
    if (!this.isOpen()) return
    Result.try(() => this.send(held))
  }

  private send(held: ReadonlyArray<Message>): void {
    let top: Message | undefined
    for (const message of held) {
      const tag = message.fields.deliveryTag
      if (tag >= this.#low) this.channel.ack(message, false)
      else if (top === undefined || tag > top.fields.deliveryTag) top = message
    }
    if (top !== undefined) this.channel.ack(top, true)
  }
}

const maxTrackedNacks = 10_000

/**
 * The attempt of a delivery: the broker's `x-delivery-count` on quorum queues; on classic queues the
 * requeues this process saw (at least one when the broker says `redelivered`); plus the attempt a delayed
 * retry's copy carries.
 */
export const attemptOf = (
  message: ConsumeMessage,
  nacks: ReadonlyMap<string, number>,
  id: string | undefined = AmqpEnvelope.carriedId(message)
): number => {
  const base = AmqpEnvelope.baseAttempt(message)
  const deliveryCount = message.properties.headers?.["x-delivery-count"]
  if (typeof deliveryCount === "number") return base + deliveryCount
  if (!message.fields.redelivered) return base
  return base + Math.max(1, (id === undefined ? undefined : nacks.get(id)) ?? 1)
}

const ackError = (destination: string, reason: Errors.Reason, cause?: unknown) =>
  new Errors.AckError({ destination, reason, ...(cause === undefined ? {} : { cause }) })

const onChannel = (destination: string, operation: () => void): Effect.Effect<void, Errors.AckError> =>
  Effect.try({ try: operation, catch: (error) => ackError(destination, AmqpErrors.reasonOf(error), error) })

/** Requeues a delivery now (`counted`: a nack of the consumer, counted for `attempt` on classic queues). */
const requeue = (message: ConsumeMessage, id: string | undefined, acks: Acks, context: Context, counted: boolean) =>
  onChannel(context.destination, () => {
    const nacks = context.nacks
    if (counted && id !== undefined) {
      if (nacks.size > maxTrackedNacks) nacks.clear()
      nacks.set(id, (nacks.get(id) ?? 0) + 1)
    }
    acks.nack(message, true)
  })

/**
 * Redelivers later: the delayed copy is published, then this delivery acked. Never leaves the delivery unsettled
 * on a live channel (it would hold a prefetch slot until the channel closes): without a delayed copy, it is
 * requeued now.
 */
const later = (
  delivery: { readonly message: ConsumeMessage; readonly id: string | undefined; readonly envelope: Envelope.Envelope },
  acks: Acks,
  context: Context,
  ack: Effect.Effect<void, Errors.AckError>,
  delayMillis: number
) =>
  context.scheduleRetry(delivery.envelope, delayMillis).pipe(Effect.matchEffect({
    onSuccess: () => ack,
    onFailure: (e) =>
      Effect.logWarning(
        `could not schedule the delayed retry of message ${delivery.envelope.id} from ${context.queue} ` +
          `(${e.reason.message}); requeueing it immediately instead`
      ).pipe(
        Effect.andThen(requeue(delivery.message, delivery.id, acks, context, true)),
        Effect.mapError((requeueError) =>
          ackError(context.destination, Errors.reason(
            requeueError.kind,
            `scheduling the delayed retry failed (${e.reason.message}) and requeueing failed: ${requeueError.reason.message}`
          ), requeueError)
        )
      )
  }))

/**
 * Builds the settle-once delivery of a message on the channel that delivered it (settled through its `acks`).
 * Only the ack is built up front: a nack's effects are built when called, `release` when read (the hot path
 * is deliver → ack).
 */
export const make = (
  message: ConsumeMessage,
  watched: Channels.Watched<Channel>,
  acks: Acks,
  context: Context,
  now: () => number
): Delivery => {
  const { destination, nacks } = context
  const id = AmqpEnvelope.carriedId(message)
  const envelope = AmqpEnvelope.toEnvelope(message, destination, attemptOf(message, nacks, id), now, id)
  const ack = onChannel(destination, () => {
    acks.ack(message)
    if (message.fields.redelivered && id !== undefined) nacks.delete(id)
  })
  const settlement = Settlement.make(destination, {
    ack,
    nack: (options) => {
      const delayMillis = options?.delay === undefined ? 0 : Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.delay)))
      return delayMillis > 0
        ? later({ message, id, envelope }, acks, context, ack, delayMillis)
        : requeue(message, id, acks, context, true)
    },
    isLive: () => Channels.isOpen(watched)
  })
  return {
    envelope,
    ack: settlement.ack,
    nack: settlement.nack,
    get release() {
      return settlement.once.run(requeue(message, id, acks, context, false))
    }
  }
}
