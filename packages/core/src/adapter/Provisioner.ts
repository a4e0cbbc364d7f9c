/**
 * "Declare on first use": a destination's topology (an AMQP queue and its bindings, a JetStream stream, a
 * Kafka topic) is declared once, the first time something publishes to or subscribes to it, however many
 * fibers ask at once; a failed declaration is not remembered (the next use tries again); and everything is
 * forgotten when the connection is re-established (the broker may have lost what was declared). Built on
 * effect's `Cache`, so concurrent first uses share one declaration.
 *
 * @since 0.3.0
 */
import { Cache, Duration, Effect, Exit } from "effect"

/**
 * A declare-once cache of declarations.
 *
 * @since 0.3.0
 */
export interface Provisioner<K, E> {
  /** Declares `key` unless it was declared since the last {@link Provisioner.invalidateAll}. */
  readonly ensure: (key: K) => Effect.Effect<void, E>
  /** Forgets one declaration (it was deleted, or found missing). */
  readonly invalidate: (key: K) => Effect.Effect<void>
  /** Forgets every declaration: run it after a reconnect. */
  readonly invalidateAll: Effect.Effect<void>
}

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 */
export interface Options<K, E, R> {
  /** Declares one key at the broker. */
  readonly declare: (key: K) => Effect.Effect<void, E, R>
  /** The identity of a key (default: the key itself, for string keys). Keys with the same identity are declared once. */
  readonly identify?: ((key: K) => string) | undefined
}

/**
 * Makes a provisioner.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Provisioner } from "@switchyard/core/adapter"
 * const program = Effect.gen(function*() {
 *   const queues = yield* Provisioner.make({ declare: (queue: string) => Effect.log(`declare ${queue}`) })
 *   yield* Effect.all([queues.ensure("orders"), queues.ensure("orders")], { concurrency: 2 }) // logs once
 *   yield* queues.invalidateAll // after a reconnect
 *   yield* queues.ensure("orders") // logs again
 * })
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const make = <K, E = never, R = never>(options: Options<K, E, R>): Effect.Effect<Provisioner<K, E>, never, R> => {
  const identify = options.identify ?? String
  // The cache is keyed by identity; the key itself is looked up here when the cache asks for it.
  const requested = new Map<string, K>()
  // What is declared, for the hot path (every publish asks): a set lookup, no cache lookup (a hash map
  // keyed by Effect's `Hash`, an effect and an exit per call). Bumped on every invalidation, so that a
  // declaration that was in flight when its key was invalidated is not taken for a current one.
  const declared = new Set<string>()
  let generation = 0
  return Effect.map(
    Cache.makeWith<string, void, E, R>(
      (id) => {
        const key = requested.get(id)
        return key === undefined ? Effect.void : options.declare(key)
      },
      {
        capacity: Number.MAX_SAFE_INTEGER,
        timeToLive: (exit) => Exit.isSuccess(exit) ? Duration.infinity : Duration.zero
      }
    ),
    (cache): Provisioner<K, E> => ({
      ensure: (key) =>
        Effect.suspend(() => {
          const id = identify(key)
          if (declared.has(id)) return Effect.void
          requested.set(id, key)
          const asked = generation
          return Effect.tap(Cache.get(cache, id), () =>
            Effect.sync(() => {
              if (generation === asked) declared.add(id)
            }))
        }),
      invalidate: (key) =>
        Effect.suspend(() => {
          const id = identify(key)
          generation++
          declared.delete(id)
          return Cache.invalidate(cache, id)
        }),
      invalidateAll: Effect.suspend(() => {
        generation++
        declared.clear()
        return Cache.invalidateAll(cache)
      })
    })
  )
}
