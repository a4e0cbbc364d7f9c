/**
 * Reconnect supervision: a client resource (a connection, a channel, a consumer) that is re-acquired on a
 * `Schedule` each time it is lost, with no loop or flag in the adapter. The current resource lives in a
 * `ScopedRef` (re-acquiring releases the old one); every acquisition bumps a `generation` that watchers
 * (re-attaching consumers, re-declaring topology) follow as a stream; when the schedule gives up the
 * supervisor's `failure` completes, and it stays failed.
 *
 * @since 0.3.0
 */
import { Deferred, Effect, Schedule, type Scope, ScopedRef, Stream, SubscriptionRef } from "effect"

/**
 * A supervised resource.
 *
 * @since 0.3.0
 */
export interface Supervised<A, E> {
  /** The live resource (during a reconnect, the one being replaced: operations on it fail as retryable). */
  readonly current: Effect.Effect<A>
  /** 1 for the first acquisition, +1 for each reconnect. */
  readonly generation: Effect.Effect<number>
  /** Every generation from the current one on (follow it to re-attach after a reconnect). */
  readonly generations: Stream.Stream<number>
  /** Completes with the last acquisition's error when the schedule gave up reconnecting. */
  readonly failure: Deferred.Deferred<never, E>
}

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 */
export interface Options<A, E, R> {
  /** Acquires the resource in the scope given (released when it is replaced or the supervisor closes). */
  readonly acquire: Effect.Effect<A, E, R | Scope.Scope>
  /** Completes when the resource is lost (its close or error event). */
  readonly lost: (resource: A) => Effect.Effect<unknown>
  /** Paces the re-acquisitions after a loss; when it ends, the supervisor fails. */
  readonly schedule: Schedule.Schedule<unknown, E>
  /** Runs after each re-acquisition (not the first), e.g. to log or re-declare topology. */
  readonly onReacquired?: ((resource: A, generation: number) => Effect.Effect<void>) | undefined
}

/**
 * Acquires the resource (failing if the first acquisition fails) and supervises it in the current scope.
 *
 * @example
 * ```ts
 * import { Deferred, Effect, Schedule } from "effect"
 * import { Supervisor } from "@switchyard/core/adapter"
 * interface Client { readonly closed: Deferred.Deferred<void> }
 * declare const connect: Effect.Effect<Client, Error>
 * const supervised = Supervisor.make({
 *   acquire: connect,
 *   lost: (client) => Deferred.await(client.closed),
 *   schedule: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 10 }))
 * })
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const make = <A, E, R>(
  options: Options<A, E, R>
): Effect.Effect<Supervised<A, E>, E, R | Scope.Scope> =>
  Effect.gen(function*() {
    const ref = yield* ScopedRef.fromAcquire(options.acquire)
    const generation = yield* SubscriptionRef.make(1)
    const failure = yield* Deferred.make<never, E>()
    const reacquire = ScopedRef.set(ref, options.acquire).pipe(Effect.retry(options.schedule))
    const cycle = ScopedRef.get(ref).pipe(
      Effect.flatMap(options.lost),
      Effect.andThen(reacquire),
      Effect.andThen(SubscriptionRef.updateAndGet(generation, (n) => n + 1)),
      Effect.flatMap((n) =>
        options.onReacquired === undefined
          ? Effect.void
          : Effect.flatMap(ScopedRef.get(ref), (resource) => options.onReacquired!(resource, n))
      )
    )
    yield* Effect.forever(cycle).pipe(
      Effect.catch((error) => Deferred.fail(failure, error)),
      Effect.forkScoped
    )
    return {
      current: ScopedRef.get(ref),
      generation: SubscriptionRef.get(generation),
      generations: SubscriptionRef.changes(generation),
      failure
    }
  })
