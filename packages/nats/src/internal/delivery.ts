/**
 * Where a JetStream delivery gets settled: `ack`, `nack` (`nak`, with the delay) and `term` go through the
 * kit's `Settlement.make` (settle once; nothing sent once the connection closed); `working()` resets the
 * server's ack-wait timer without settling.
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { Broker, Envelope, Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import { Duration, Effect, Result } from "effect"
import type { Coordinates, JetStreamDelivery } from "../NatsBroker.ts"
import { fromMessage } from "./envelope.ts"
import { ackError } from "./errors.ts"

/** What every delivery of one subscription shares. */
export interface DeliveryContext {
  readonly destination: string
  /** The Clock's time (`clock.currentTimeMillisUnsafe`). */
  readonly now: () => number
  /** Unsettled deliveries (queued or taken): the heartbeat keeps them alive, a close hands them back. */
  readonly inflight: Set<Delivery>
  /** `maxDeliver`, when set (the server allows one delivery more, see `ConsumerSettings.maxDeliver`). */
  readonly deliveryLimit: number | undefined
  /** Whether the connection that delivered is still open. */
  readonly isLive: () => boolean
}

/** The coordinates of a JetStream message. */
export const coordinatesOf = (destination: string, m: JsMsg): Coordinates => ({
  destination,
  sequence: m.info.streamSequence,
  stream: m.info.stream,
  consumerSequence: m.info.deliverySequence,
  subject: m.subject
})

/** The envelope of a JetStream message (its stored time is the fallback timestamp). */
export const envelopeOf = (destination: string, m: JsMsg, attempt: number, now: () => number): Envelope.Envelope =>
  fromMessage(m, {
    attempt,
    coordinates: coordinatesOf(destination, m),
    stream: m.info.stream,
    brokerTimestamp: m.time.getTime()
  }, now)

const delayMillis = (options: Broker.NackOptions | undefined): number | undefined =>
  options?.delay === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(options.delay))

/** One JetStream delivery; the envelope is read on first access. */
export class Delivery implements JetStreamDelivery {
  #envelope: Envelope.Envelope | undefined
  /** When the server last heard about this delivery (arrival or `working()`), on the Clock. */
  heardAt: number
  readonly ack: Effect.Effect<void, Errors.AckError>
  readonly nack: (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError>
  readonly term: (reason?: string) => Effect.Effect<void, Errors.AckError>
  readonly working: Effect.Effect<void, Errors.AckError>
  readonly #once: Settlement.Once

  constructor(readonly message: JsMsg, readonly context: DeliveryContext) {
    this.heardAt = context.now()
    const settle = Settlement.make(context.destination, {
      ack: this.#send((m) => m.ack()),
      nack: (options) => this.#send((m) => m.nak(delayMillis(options))),
      isLive: context.isLive
    })
    this.#once = settle.once
    this.ack = settle.ack
    this.nack = settle.nack
    this.term = (why) => settle.once.run(this.#send((m) => m.term(why)))
    this.working = Effect.suspend(() => this.#once.settled ? Effect.void : this.#touch())
  }

  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      this.#envelope = envelopeOf(this.context.destination, this.message, this.message.info.deliveryCount, this.context.now)
    }
    return this.#envelope
  }

  get deliveryLimit(): number | undefined {
    return this.context.deliveryLimit
  }

  /** Sends `working()` if the server last heard about it `after` millis ago or more (the heartbeat). */
  keepAlive(now: number, after: number): void {
    if (!this.#once.settled && now - this.heardAt >= after) {
      this.heardAt = now
      // Disconnected: nats.js cannot send now; the next heartbeat tries again.
      Result.try(() => this.message.working())
    }
  }

  /** Gives the message back to the server for redelivery after `delayMillis` (settling it). */
  handBack(delay: number): Effect.Effect<void> {
    return Effect.ignore(this.nack({ delay: Duration.millis(delay) }))
  }

  #touch(): Effect.Effect<void, Errors.AckError> {
    return Effect.try({
      try: () => {
        this.heardAt = this.context.now()
        this.message.working()
      },
      catch: ackError(this.context.destination)
    })
  }

  #send(operation: (m: JsMsg) => void): Effect.Effect<void, Errors.AckError> {
    return Effect.try({
      try: () => {
        this.context.inflight.delete(this)
        operation(this.message)
      },
      catch: ackError(this.context.destination)
    })
  }
}
