/**
 * Reconnect supervision: a client resource (a connection, a channel, a consumer) that is re-acquired on a
 * `Schedule` each time it is lost, with no loop or flag in the adapter. The current resource lives in a
 * `ScopedRef` (re-acquiring releases the old one); every acquisition bumps a `generation` that watchers
 * (re-attaching consumers, re-declaring topology) follow as a stream; when the schedule gives up the
 * supervisor's `failure` completes, and it stays failed.
 *
 * Pacing: a resource lost after it lived `stableAfter` is re-acquired at once, and the schedule starts
 * afresh. One lost sooner (a broker that accepts and then drops, a channel the server closes on open) does
 * not reset the schedule: the next step's delay is waited first, so a flapping broker costs a reconnect per
 * schedule step, never a reconnect per round trip.
 *
 * @since 0.3.0
 */
import { Clock, Data, Deferred, Duration, Effect, Pull, Ref, Schedule, type Scope, ScopedRef, Stream, SubscriptionRef } from "effect"

/**
 * What the schedule is stepped with when a resource is lost before it lived `stableAfter` (acquisition
 * failures step it with their error).
 *
 * @category models
 * @since 0.4.0
 */
export class LostEarly extends Data.TaggedClass("LostEarly")<{
  /** How long the resource lived. */
  readonly lifetime: Duration.Duration
}> {}

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
  /**
   * Paces the re-acquisitions after a loss, stepped with each failed acquisition's error and with
   * {@link LostEarly} for a resource lost before `stableAfter`. When it ends on a failed acquisition the
   * supervisor fails; when it ends on an early loss, it starts afresh with an immediate attempt.
   */
  readonly schedule: Schedule.Schedule<unknown, E | LostEarly>
  /** How long a resource must live for its loss to reset the schedule (default 5 seconds). */
  readonly stableAfter?: Duration.Input | undefined
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
    const stableAfter = Duration.fromInputUnsafe(options.stableAfter ?? "5 seconds")
    const freshSteps = Schedule.toStepWithSleep(options.schedule)
    const steps = yield* Ref.make(yield* freshSteps)
    // waits one step of the schedule; false when the schedule is done
    const pause = (step: Step<E>, input: E | LostEarly) =>
      step(input).pipe(Effect.as(true), Pull.catchDone(() => Effect.succeed(false)))
    const acquireOn = (step: Step<E>): Effect.Effect<void, E, R> =>
      ScopedRef.set(ref, options.acquire).pipe(
        Effect.catch((error) =>
          Effect.flatMap(pause(step, error), (more) => more ? acquireOn(step) : Effect.fail(error))
        )
      )
    // an early loss waits the schedule's next step; a stable one, or a schedule that has run out, starts afresh
    const reacquireAfter = Effect.fnUntraced(function*(lifetime: Duration.Duration) {
      const early = Duration.isLessThan(lifetime, stableAfter)
      const paced = early && (yield* pause(yield* Ref.get(steps), new LostEarly({ lifetime })))
      if (!paced) yield* Ref.set(steps, yield* freshSteps)
      yield* acquireOn(yield* Ref.get(steps))
    })
    const cycle = Effect.gen(function*() {
      const since = yield* Clock.currentTimeMillis
      yield* Effect.flatMap(ScopedRef.get(ref), options.lost)
      yield* reacquireAfter(Duration.millis((yield* Clock.currentTimeMillis) - since))
      const n = yield* SubscriptionRef.updateAndGet(generation, (n) => n + 1)
      if (options.onReacquired !== undefined) yield* options.onReacquired(yield* ScopedRef.get(ref), n)
    })
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

/** One step of the pacing schedule: sleeps its delay, or fails with `Done` when the schedule has ended. */
type Step<E> = (input: E | LostEarly) => Pull.Pull<unknown, never, unknown>
