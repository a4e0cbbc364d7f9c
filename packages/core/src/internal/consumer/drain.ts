/**
 * Drain: the consumer's graceful shutdown. Interruption stops intake (the broker takes back what it
 * buffered for this member), gives back at once what the consumer took but did not start (nack without
 * delay: other members get it now, not after an ack deadline), and lets in-flight handlers finish within
 * `drain.timeout` before they are interrupted (unsettled messages are then redelivered).
 */
import { Deferred, Duration, Effect, Fiber, Option } from "effect"
import type { Delivery } from "../../Subscriber.ts"
import { settle } from "./step.ts"

/**
 * Deliveries taken from the subscription but not started yet. Touched only in synchronous steps of the
 * consumer's own fibers (JavaScript runs one at a time), so each operation is atomic.
 */
export class Pending<D> {
  readonly #deliveries = new Set<D>()

  /** Records a delivery as taken; returns it. */
  add(delivery: D): D {
    this.#deliveries.add(delivery)
    return delivery
  }

  /** Claims a delivery for a handler run: `false` if it was given back already. */
  start(delivery: D): boolean {
    return this.#deliveries.delete(delivery)
  }

  /** Claims every delivery not started yet (to give them back). */
  takeAll(): ReadonlyArray<D> {
    const all = [...this.#deliveries]
    this.#deliveries.clear()
    return all
  }

  /** Deliveries taken and not started. */
  get size(): number {
    return this.#deliveries.size
  }
}

/** The shutdown state of one consumer. */
export interface Drain<A> {
  /** Completed when shutdown begins. */
  readonly stop: Deferred.Deferred<void>
  /** Records a delivery taken from the subscription. */
  readonly track: (delivery: Delivery<A>) => Delivery<A>
  /** Gives back (nack, no delay) every delivery taken and not started. */
  readonly releasePending: Effect.Effect<void>
  /** Forgets what was taken and not started (after a subscription failure the broker redelivers it anyway). */
  readonly forget: Effect.Effect<void>
  /**
   * Runs `handle` on a delivery a lane reached, unless it was given back already; once shutdown began it
   * is given back instead.
   */
  readonly begin: <E, R>(handle: (delivery: Delivery<A>) => Effect.Effect<unknown, E, R>) => (delivery: Delivery<A>) => Effect.Effect<unknown, E, R>
}

const release = <A>(delivery: Delivery<A>) => settle(delivery, delivery.nack())

/** Makes the shutdown state of a consumer. */
export const make = <A>(): Effect.Effect<Drain<A>> =>
  Effect.map(Deferred.make<void>(), (stop) => {
    const pending = new Pending<Delivery<A>>()
    return {
      stop,
      track: (delivery) => pending.add(delivery),
      releasePending: Effect.suspend(() => Effect.forEach(pending.takeAll(), release, { discard: true })),
      forget: Effect.sync(() => {
        pending.takeAll()
      }),
      begin: (handle) => (delivery) =>
        !pending.start(delivery) ? Effect.void : Deferred.isDoneUnsafe(stop) ? release(delivery) : handle(delivery)
    }
  })

/**
 * Begins the shutdown of the consumer running in `fiber`, and waits up to `timeout` for it to finish what is
 * in flight (`name`: the consumer, for the logs).
 */
export const drain = Effect.fn("Consumer.drain")(function*<A, E>(
  state: Drain<A>,
  fiber: Fiber.Fiber<unknown, E>,
  timeout: Duration.Duration,
  name: string
) {
  yield* Effect.logInfo(`${name}: draining in-flight messages`)
  yield* Deferred.succeed(state.stop, undefined)
  const drained = yield* Fiber.await(fiber).pipe(Effect.timeoutOption(timeout))
  if (Option.isNone(drained)) {
    yield* Effect.logWarning(`${name}: drain timeout, interrupting handlers (unsettled messages will be redelivered)`)
  }
})
