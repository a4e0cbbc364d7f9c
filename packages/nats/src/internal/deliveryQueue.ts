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

/**
 * A delivery queue whose consumer wakes in the same tick as the socket read. Unbounded when the server
 * bounds what it sends (JetStream's `max_ack_pending`); with a `capacity`, `Queue.offerUnsafe` returns
 * `false` instead of growing when it is full (core NATS, which has no flow control).
 */
export const makeDeliveryQueue = <D extends Broker.RawDelivery>(capacity?: number): Effect.Effect<
  Queue.Queue<D, Errors.SubscribeError | Cause.Done>
> =>
  Queue.make<D, Errors.SubscribeError | Cause.Done>(capacity === undefined ? undefined : { capacity }).pipe(
    Effect.provideService(Scheduler.Scheduler, wakeInSameTick)
  )
