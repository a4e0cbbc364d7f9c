/**
 * effect's `KeyValueStore` on Redis, for core's `Idempotency` ledgers (and anything else that takes a
 * `KeyValueStore`). effect 4 ships a Redis `Redis` service (`effect/persistence/Redis`, provided by
 * `@effect/platform-node`'s `NodeRedis` and by every layer of this package) and Redis-backed `Persistence`
 * (`Persistence.layerBackingRedis`), but no Redis `KeyValueStore`; this is a thin `KeyValueStore.makeStringOnly`
 * over the `Redis` service, nothing more: keys live under a prefix (default `switchyard:kv:`), binary values
 * as base64 (effect's string-only adapter), `size`/`keys`/`clear` scan the prefix.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { KeyValueStore, Redis } from "effect/persistence"

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Prefix of every key (default `switchyard:kv:`). */
  readonly prefix?: string | undefined
}

const storeError = (method: string, key?: string) => (cause: unknown) =>
  new KeyValueStore.KeyValueStoreError({
    method,
    message: `Redis ${method} failed${key === undefined ? "" : ` for ${key}`}`,
    cause,
    ...(key !== undefined ? { key } : {})
  })

const textOf = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/**
 * Builds the store over the `Redis` service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisKeyValueStore } from "@switchyard/redis"
 * const store = RedisKeyValueStore.make({ prefix: "orders:idempotency:" })
 * ```
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<KeyValueStore.KeyValueStore, never, Redis.Redis> =>
  Effect.map(Effect.service(Redis.Redis), (redis) => {
    const prefix = options.prefix ?? "switchyard:kv:"
    const scanAll = Effect.fnUntraced(function*() {
      const keys: Array<string> = []
      let cursor = "0"
      do {
        const reply = yield* redis.send<unknown>("SCAN", cursor, "MATCH", `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`, "COUNT", "1000")
        if (!Array.isArray(reply)) break
        cursor = textOf(reply[0]) ?? "0"
        const page = Array.isArray(reply[1]) ? reply[1].map(textOf).filter((k) => k !== undefined) : []
        keys.push(...page)
      } while (cursor !== "0")
      return keys
    })
    const all = scanAll().pipe(Effect.mapError(storeError("keys")))
    return KeyValueStore.makeStringOnly({
      get: (key) => redis.send<unknown>("GET", prefix + key).pipe(Effect.map(textOf), Effect.mapError(storeError("get", key))),
      set: (key, value) => redis.send("SET", prefix + key, value).pipe(Effect.asVoid, Effect.mapError(storeError("set", key))),
      remove: (key) => redis.send("DEL", prefix + key).pipe(Effect.asVoid, Effect.mapError(storeError("remove", key))),
      clear: Effect.flatMap(all, (keys) =>
        Effect.forEach(keys, (key) => redis.send("DEL", key).pipe(Effect.mapError(storeError("clear", key))), { discard: true })),
      size: Effect.map(all, (keys) => keys.length),
      keys: Effect.map(all, (keys) => keys.map((key) => key.slice(prefix.length)))
    })
  })

/**
 * The store as a `KeyValueStore` layer over the `Redis` service (e.g. from `RedisBroker.layer`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RedisBroker, RedisKeyValueStore } from "@switchyard/redis"
 * const live = RedisKeyValueStore.layer().pipe(Layer.provideMerge(RedisBroker.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<KeyValueStore.KeyValueStore, never, Redis.Redis> =>
  Layer.effect(KeyValueStore.KeyValueStore, make(options))
