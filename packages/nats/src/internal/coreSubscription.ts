/**
 * Core NATS subscribe: a (queue-group) subscription's callback → the kit's `DeliveryQueue` of `prefetch`
 * deliveries → `Subscription`. Core NATS has no flow control, so what arrives while the queue is full is
 * dropped and counted (`switchyard_nats_slow_consumer_dropped`), as the server does for slow consumers.
 * At most once: settling is a no-op (see `coreDelivery.ts`).
 */
import type { Msg, NatsConnection as RawConnection } from "@nats-io/transport-node"
import type { Broker, Errors } from "@switchyard/core"
import { DeliveryQueue } from "@switchyard/core/adapter"
import { Effect, Metric, type Scope } from "effect"
import { CoreDelivery } from "./coreDelivery.ts"
import { subscribeError } from "./errors.ts"
import { burstCounter } from "./subscription.ts"

/** Core NATS deliveries dropped because the subscription's queue of `prefetch` deliveries was full. */
export const droppedDeliveries = Metric.counter("switchyard_nats_slow_consumer_dropped", {
  description: "Core NATS deliveries dropped because the subscription's prefetch queue was full",
  incremental: true
})

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
