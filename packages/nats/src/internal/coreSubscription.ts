/**
 * Core NATS subscribe: a (queue-group) subscription's callback → the kit's `DeliveryQueue` of `prefetch`
 * deliveries → `Subscription`. Core NATS has no flow control, so what arrives while the queue is full is
 * dropped and counted (`switchyard_nats_slow_consumer_dropped`), as the server does for slow consumers.
 * At most once: settling is a no-op (through `Settlement.make`, so only the first one counts).
 */
import type { Msg, NatsConnection as RawConnection } from "@nats-io/transport-node"
import type { Broker, Envelope, Errors } from "@switchyard/core"
import { DeliveryQueue, Settlement } from "@switchyard/core/adapter"
import { Effect, Metric, type Scope } from "effect"
import { fromMessage } from "./envelope.ts"
import { subscribeError } from "./errors.ts"
import { burstCounter } from "./subscription.ts"

/** Core NATS deliveries dropped because the subscription's queue of `prefetch` deliveries was full. */
export const droppedDeliveries = Metric.counter("switchyard_nats_slow_consumer_dropped", {
  description: "Core NATS deliveries dropped because the subscription's prefetch queue was full",
  incremental: true
})

const atMostOnce: Settlement.Operations = { ack: Effect.void, nack: () => Effect.void }

/** One core NATS delivery; the envelope is read on first access. */
class CoreDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  readonly ack: Effect.Effect<void, Errors.AckError>
  readonly nack: (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError>
  constructor(readonly message: Msg, readonly now: () => number) {
    const settle = Settlement.make(message.subject, atMostOnce)
    this.ack = settle.ack
    this.nack = settle.nack
  }
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      this.#envelope = fromMessage(this.message, { attempt: 1, coordinates: { destination: this.message.subject } }, this.now)
    }
    return this.#envelope
  }
}

/** Subscribes a member of `options.group` (a queue group) to a subject. */
export const subscribe = Effect.fn("NatsBroker.subscribeCore")(function*(
  nc: RawConnection,
  now: () => number,
  destination: string,
  options: Broker.SubscribeOptions
): Effect.fn.Return<Broker.Subscription, Errors.SubscribeError, Scope.Scope> {
  const capacity = Math.max(1, options.prefetch)
  const queue = yield* DeliveryQueue.make<CoreDelivery>({ capacity })
  const dropped = yield* burstCounter(
    droppedDeliveries,
    { "messaging.destination.name": destination, "messaging.consumer.group.name": options.group },
    "nats slow consumer: core NATS deliveries dropped while the subscription's queue was full " +
      "(at-most-once; raise prefetch or consume faster)",
    { prefetch: capacity }
  )
  const onMessage = (err: Error | null, msg: Msg): void => {
    if (err !== null) queue.fail(subscribeError(destination)(err))
    else if (!queue.offer(new CoreDelivery(msg, now))) dropped()
  }
  yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => {
        const sub = nc.subscribe(destination, { queue: options.group, callback: onMessage })
        return nc.flush().then(() => sub)
      },
      catch: subscribeError(destination)
    }),
    (sub) =>
      Effect.sync(() => {
        if (!sub.isClosed()) sub.unsubscribe()
        queue.end()
      })
  )
  return { deliveries: queue.stream }
})
