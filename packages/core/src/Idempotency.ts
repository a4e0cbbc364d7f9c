/**
 * Idempotent consumption: skip messages whose id a consumer group has already processed. The store is
 * effect's `KeyValueStore` (`effect/persistence`), so any of its backends works — in memory (the default),
 * file system, SQL, Redis — and brokers can offer their own (NATS JetStream KV in `@switchyard/nats`).
 *
 * @since 0.1.0
 */
import { Effect, identity, Option } from "effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/**
 * Idempotency options of a consumer.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /**
   * Where processed ids are remembered. Default: the `KeyValueStore` service if one is provided,
   * otherwise a private in-memory store.
   */
  readonly store?: KeyValueStore.KeyValueStore | undefined
  /** Prefix of the stored keys (default `"switchyard:processed:"`). */
  readonly keyPrefix?: string | undefined
}

/**
 * A processed-id ledger for one consumer group.
 *
 * @category models
 * @since 0.1.0
 */
export interface Ledger {
  readonly seen: (id: string) => Effect.Effect<boolean>
  readonly remember: (id: string) => Effect.Effect<void>
}

/**
 * Opens the ledger of a destination and group. Store errors never lose a message: a failed lookup counts
 * as "not seen" (the message is handled, at-least-once) and a failed write is logged.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Idempotency } from "@switchyard/core"
 * const program = Effect.gen(function*() {
 *   const ledger = yield* Idempotency.ledger({}, "orders", "email")
 *   yield* ledger.remember("msg-1")
 *   return yield* ledger.seen("msg-1") // true
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const ledger: (options: Options, destination: string, group: string) => Effect.Effect<Ledger> = Effect.fn(
  "Idempotency.ledger"
)(function*(options: Options, destination: string, group: string) {
  const store = options.store ?? Option.getOrUndefined(yield* Effect.serviceOption(KeyValueStore.KeyValueStore)) ??
    (yield* Effect.service(KeyValueStore.KeyValueStore).pipe(Effect.provide(KeyValueStore.layerMemory)))
  const prefix = `${options.keyPrefix ?? "switchyard:processed:"}${destination}:${group}:`
  return identity<Ledger>({
    seen: (id) =>
      store.has(prefix + id).pipe(
        Effect.catch((error) => Effect.as(Effect.logWarning("idempotency lookup failed; handling anyway", error), false))
      ),
    remember: (id) =>
      store.set(prefix + id, "1").pipe(
        Effect.catch((error) => Effect.logWarning("idempotency store write failed", error))
      )
  })
})
