/**
 * Effect's `KeyValueStore` on a JetStream KV bucket: a shared, durable store, e.g. for idempotency keys.
 * Keys are base64url encoded (NATS KV keys allow only a small alphabet), so any string works.
 *
 * @since 0.1.0
 */
import { type KV, Kvm } from "@nats-io/kv"
import { Errors } from "@switchyard/core"
import { Duration, Effect, Layer } from "effect"
import { KeyValueStore } from "effect/persistence"
import { BrokerErrors } from "@switchyard/core/adapter"
import { reasonOf } from "./internal/errors.ts"
import { NatsConnection } from "./NatsConnection.ts"

/**
 * Bucket options, used when the bucket is created.
 *
 * @example
 * ```ts
 * import type { NatsKeyValueStore } from "@switchyard/nats"
 * const options: NatsKeyValueStore.Options = { ttl: "1 day", storage: "file" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** Entries expire after this long (default: never). */
  readonly ttl?: Duration.Input | undefined
  readonly storage?: "file" | "memory" | undefined
  readonly replicas?: number | undefined
}

const encodeKey = (key: string): string => Buffer.from(key, "utf8").toString("base64url") || "_"
const decodeKey = (key: string): string => key === "_" ? "" : Buffer.from(key, "base64url").toString("utf8")
const textDecoder = new TextDecoder()

/**
 * Opens (or creates) a bucket and wraps it as a `KeyValueStore`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsKeyValueStore } from "@switchyard/nats"
 * const store = NatsKeyValueStore.make("idempotency", { ttl: "1 day" })
 * ```
 * @since 0.1.0
 */
export const make = Effect.fn("NatsKeyValueStore.make")(function*(bucket: string, options: Options = {}) {
  const { nc } = yield* NatsConnection
  const kv: KV = yield* Effect.tryPromise({
    try: () =>
      new Kvm(nc).create(bucket, {
        ...(options.ttl !== undefined ? { ttl: Duration.toMillis(options.ttl) } : {}),
        ...(options.storage === "memory" ? { storage: "memory" as const } : {}),
        ...(options.replicas !== undefined ? { replicas: options.replicas } : {})
      }),
    catch: (cause) => new Errors.ConnectionError({ broker: `nats-kv(${bucket})`, reason: reasonOf(cause), cause })
  })
  const fail = (method: string, key?: string) => (cause: unknown) =>
    new KeyValueStore.KeyValueStoreError({
      method,
      message: BrokerErrors.messageOf(cause),
      cause,
      ...(key !== undefined ? { key } : {})
    })
  const getBytes = (key: string) =>
    Effect.tryPromise({
      try: async () => {
        const entry = await kv.get(encodeKey(key))
        return entry === null || entry.operation !== "PUT" ? undefined : entry.value
      },
      catch: fail("get", key)
    })
  /** The bucket's keys as stored (encoded). */
  const storedKeys = Effect.tryPromise({
    try: async () => {
      const out: Array<string> = []
      for await (const k of await kv.keys()) out.push(k)
      return out
    },
    catch: fail("keys")
  })
  const keys = Effect.map(storedKeys, (all): ReadonlyArray<string> => all.map(decodeKey))
  return KeyValueStore.make({
    get: (key) => Effect.map(getBytes(key), (v) => v === undefined ? undefined : textDecoder.decode(v)),
    getUint8Array: getBytes,
    set: (key, value) =>
      Effect.tryPromise({ try: () => kv.put(encodeKey(key), value), catch: fail("set", key) }).pipe(Effect.asVoid),
    remove: (key) => Effect.tryPromise({ try: () => kv.purge(encodeKey(key)), catch: fail("remove", key) }),
    clear: Effect.flatMap(storedKeys, (all) =>
      Effect.tryPromise({
        try: () => Promise.all(all.map((k) => kv.purge(k))),
        catch: fail("clear")
      })).pipe(Effect.asVoid),
    size: Effect.map(storedKeys, (all) => all.length),
    keys
  })
})

/**
 * The store as a Layer, e.g. as the idempotency store of the consumer runtime. Needs a `NatsConnection`
 * (provided by every `NatsBroker` layer).
 *
 * @example
 * ```ts
 * import { NatsKeyValueStore } from "@switchyard/nats"
 * const live = NatsKeyValueStore.layer("idempotency")
 * ```
 * @since 0.1.0
 */
export const layer = (
  bucket: string,
  options?: Options
): Layer.Layer<KeyValueStore.KeyValueStore, Errors.ConnectionError, NatsConnection> =>
  Layer.effect(KeyValueStore.KeyValueStore, make(bucket, options))
