/**
 * Long-lived channels (the publisher's confirm channel, the requester's reply channel) supervised by the
 * kit's `Supervisor`: opened on first use, re-opened on the reconnect schedule when the broker or a dropped
 * connection closes them. What a channel's callbacks learn (its close, the broker's reason) lives in
 * `Deferred`s, not flags.
 */
import type { Channel } from "amqplib"
import type { Errors } from "@switchyard/core"
import { Supervisor } from "@switchyard/core/adapter"
import { Cache, Deferred, Duration, Effect, Exit, Scope, Stream } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"

/** A channel and what its events told. */
export interface Watched<C extends Channel> {
  readonly channel: C
  /** Completes when the channel closed. */
  readonly closed: Deferred.Deferred<void>
  /** The errors the channel emitted (the broker's reason comes before the close). */
  readonly errors: Array<unknown>
}

/** Watches a channel's `error` and `close` events. */
export const watch = <C extends Channel>(channel: C): Watched<C> => {
  const watched: Watched<C> = { channel, closed: Deferred.makeUnsafe<void>(), errors: [] }
  channel.on("error", (error: unknown) => {
    watched.errors.push(error)
  })
  channel.on("close", () => Deferred.doneUnsafe(watched.closed, Exit.void))
  return watched
}

/** Whether a watched channel is still open. */
export const isOpen = (watched: Watched<Channel>): boolean => !Deferred.isDoneUnsafe(watched.closed)

/** Closes a channel, ignoring that it may be closed already. */
export const close = (channel: Channel): Effect.Effect<void> =>
  Effect.tryPromise(() => channel.close()).pipe(Effect.timeout("5 seconds"), Effect.ignore)

/**
 * The live resource of a supervisor whose resources close (`closed`): while the current one is closed and
 * not yet replaced, waits for the next generation; fails once the supervisor gave up.
 */
export const liveOf = <A extends { readonly closed: Deferred.Deferred<void> }, E>(
  supervised: Supervisor.Supervised<A, E>
): Effect.Effect<A, E> => {
  const next = (generation: number) =>
    Effect.raceFirst(
      supervised.generations.pipe(Stream.filter((g) => g > generation), Stream.runHead, Effect.asVoid),
      Deferred.await(supervised.failure)
    )
  const live: Effect.Effect<A, E> = Effect.suspend(() =>
    Deferred.isDoneUnsafe(supervised.failure) ? Deferred.await(supervised.failure) : Effect.gen(function*() {
      const generation = yield* supervised.generation
      const resource = yield* supervised.current
      return Deferred.isDoneUnsafe(resource.closed) ? yield* Effect.andThen(next(generation), live) : resource
    })
  )
  return live
}

/**
 * A channel of the current connection, re-opened whenever it closes; `setup` runs on each (and gives what is
 * kept of it); `drain` runs before it is closed for good.
 */
export const supervise = <C extends Channel, W extends Watched<C>>(
  connection: AmqpConnection.AmqpConnectionShape,
  open: (live: AmqpConnection.Live) => Effect.Effect<C, Errors.ConnectionError>,
  setup: (watched: Watched<C>) => Effect.Effect<W, Errors.ConnectionError>,
  drain: (channel: C) => Promise<unknown> = () => Promise.resolve()
): Effect.Effect<Effect.Effect<W, Errors.ConnectionError>, Errors.ConnectionError, Scope.Scope> =>
  Supervisor.make({
    acquire: Effect.acquireRelease(
      connection.current.pipe(Effect.flatMap(open), Effect.map(watch), Effect.flatMap(setup)),
      (watched) =>
        Effect.tryPromise(() => drain(watched.channel)).pipe(
          Effect.timeout("10 seconds"),
          Effect.ignore,
          Effect.andThen(close(watched.channel))
        )
    ),
    lost: (watched) => Deferred.await(watched.closed),
    schedule: connection.reconnectSchedule
  }).pipe(Effect.map(liveOf))

/**
 * `make` run on first use, in the current scope, and shared from then on; a failed first use is not
 * remembered (the next use tries again).
 */
export const lazy = Effect.fn("AmqpChannel.lazy")(function*<A, E>(
  make: Effect.Effect<A, E, Scope.Scope>
): Effect.fn.Return<Effect.Effect<A, E>, never, Scope.Scope> {
    const scope = yield* Effect.scope
    const cache = yield* Cache.makeWith<"once", A, E>(() => Scope.provide(make, scope), {
      capacity: 1,
      timeToLive: (exit) => Exit.isSuccess(exit) ? Duration.infinity : Duration.zero
    })
    return Cache.get(cache, "once")
  })
