/**
 * The queue between nats.js's message callbacks and a subscription's Stream.
 *
 * @internal
 */
import type { Broker, Errors } from "@switchyard/core"
import { type Cause, Effect, Queue, Scheduler } from "effect"

/**
 * Dispatches the queue's wake-ups as microtasks. With the default scheduler the consumer fiber would
 * run in the event loop's check phase, after libuv's back-to-back socket reads: by then nats.js has
 * parsed a whole ack window of messages that all wait, unacked, while the server stops sending. As a
 * microtask it runs right after the read that delivered them, so acks go out in the same tick.
 */
const wakeInSameTick = new Scheduler.MixedScheduler("sync")

/** An unbounded delivery queue whose consumer wakes in the same tick as the socket read. */
export const makeDeliveryQueue = <D extends Broker.RawDelivery>(): Effect.Effect<
  Queue.Queue<D, Errors.SubscribeError | Cause.Done>
> =>
  Queue.unbounded<D, Errors.SubscribeError | Cause.Done>().pipe(
    Effect.provideService(Scheduler.Scheduler, wakeInSameTick)
  )
