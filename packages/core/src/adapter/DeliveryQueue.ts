/**
 * The bounded queue between a client's message callback and a subscription's `Stream`. Every adapter hands
 * its deliveries over through it, so every adapter has the same bound and the same overflow signal: `offer`
 * is synchronous (callable from the client's callback) and returns `false` when the queue is full instead
 * of growing. An adapter whose broker bounds what it sends (AMQP `basic.qos`, JetStream
 * `max_ack_pending`, Kafka paused partitions) sizes the queue to that bound, so `false` never happens; one
 * without flow control (core NATS) counts and drops what does not fit.
 *
 * @since 0.3.0
 */
import { Cause, Effect, Queue, Scheduler, Stream } from "effect"
import type { SubscribeError } from "../Errors.ts"

/**
 * A bounded delivery queue.
 *
 * @since 0.3.0
 */
export interface DeliveryQueue<D> {
  /** Hands one delivery over; `false` when the queue is full (nothing was added). Synchronous. */
  readonly offer: (delivery: D) => boolean
  /** Ends the stream with a failure (the subscription broke). Synchronous. */
  readonly fail: (error: SubscribeError) => void
  /** Ends the stream after what is queued (the subscription closed). Synchronous. */
  readonly end: () => void
  /** Deliveries queued and not yet taken. */
  readonly size: () => number
  /** Takes deliveries out of the queue; ends or fails as told by `end` / `fail`. */
  readonly stream: Stream.Stream<D, SubscribeError>
  /** Removes and returns everything queued and not yet taken (to hand it back to the broker). */
  readonly drain: Effect.Effect<ReadonlyArray<D>>
}

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 */
export interface Options {
  /** The most deliveries held; usually the subscription's prefetch. */
  readonly capacity: number
  /**
   * Wake the consuming fiber as a microtask, right after the socket read that delivered (default `true`).
   * With the default scheduler it runs in the event loop's check phase, after libuv's back-to-back reads:
   * by then a client can have parsed a whole prefetch window that waits, unacked, while the broker stops
   * sending.
   */
  readonly wakeInSameTick?: boolean | undefined
}

const sameTick = new Scheduler.MixedScheduler("sync")

/**
 * Makes a bounded delivery queue.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { DeliveryQueue } from "@switchyard/core/adapter"
 * const program = Effect.gen(function*() {
 *   const queue = yield* DeliveryQueue.make<number>({ capacity: 2 })
 *   const accepted = [queue.offer(1), queue.offer(2), queue.offer(3)] // [true, true, false]
 *   queue.end()
 *   return { accepted, taken: yield* Stream.runCollect(queue.stream) } // taken: [1, 2]
 * })
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const make = <D>(options: Options): Effect.Effect<DeliveryQueue<D>> => {
  const made = Queue.make<D, SubscribeError | Cause.Done>({ capacity: Math.max(1, options.capacity) })
  return Effect.map(
    options.wakeInSameTick === false ? made : Effect.provideService(made, Scheduler.Scheduler, sameTick),
    (queue): DeliveryQueue<D> => ({
      offer: (delivery) => Queue.offerUnsafe(queue, delivery),
      fail: (error) => {
        Queue.failCauseUnsafe(queue, Cause.fail(error))
      },
      end: () => {
        Queue.endUnsafe(queue)
      },
      size: () => Queue.sizeUnsafe(queue),
      stream: Stream.fromQueue(queue),
      drain: Effect.orElseSucceed(Queue.clear(queue), () => [])
    })
  )
}
