/**
 * Redis streams as data, and their admin operations. A destination is one stream (its key is the destination
 * name); a Switchyard group is a consumer group of that stream, created on first use with `XGROUP CREATE …
 * MKSTREAM` at `0` (`startFrom: "earliest"`) or `$` (`"latest"`). Retention is data too: `MAXLEN` (keep the
 * newest N entries) or `MINID` from a `maxAge`, applied by every `XADD` (approximately, `~`, unless `exact`).
 *
 * Trimming does not look at consumer groups (Redis 7.0): an entry trimmed before every group acknowledged it
 * is gone. A member that then claims or re-reads it finds it deleted (`XAUTOCLAIM` reports the ids, a history
 * read returns it without fields); the adapter removes such ids from the group's pending list, logs them as
 * a warning and counts them in `switchyard_redis_trimmed_unacked` (see `docs/brokers/redis.md`).
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, type Scope } from "effect"
import type { Broker, Errors } from "@switchyard/core"
import { reasonOf } from "./internal/errors.ts"
import * as Provision from "./internal/provision.ts"
import * as Replies from "./internal/replies.ts"
import { RedisConnection } from "./RedisConnection.ts"
import { Errors as CoreErrors } from "@switchyard/core"

/**
 * How much of a stream is kept.
 *
 * @since 0.1.0
 */
export interface Retention {
  /** Keep at most this many entries (`MAXLEN`). */
  readonly maxLen?: number | undefined
  /** Keep entries younger than this (`MINID` of now minus the age). */
  readonly maxAge?: Duration.Input | undefined
  /** Trim exactly (`=`) instead of approximately (`~`, whole macro nodes, much cheaper). Default false. */
  readonly exact?: boolean | undefined
}

/**
 * A declared stream.
 *
 * @since 0.1.0
 */
export interface StreamSpec {
  readonly retention?: Retention | undefined
  /** Groups created when the broker starts (else each is created on first subscribe), with where they start. */
  readonly groups?: Readonly<Record<string, Broker.StartFrom>> | undefined
}

/**
 * The topology's shape.
 *
 * @since 0.1.0
 */
export interface RedisTopologyShape {
  /** The declared spec of a stream (or the default; `<name>.dlq` streams get no default retention). */
  readonly specFor: (stream: string) => StreamSpec
  /** The trim arguments of an `XADD` to the stream (`MAXLEN ~ n` / `MINID ~ id`), now. */
  readonly trimArgs: (stream: string) => Effect.Effect<ReadonlyArray<string>>
  /** Creates the group (and the stream) unless it was created since the last reconnect. */
  readonly ensureGroup: (stream: string, group: string, startFrom: Broker.StartFrom) => Effect.Effect<void, Errors.SubscribeError>
  /** Forgets every created group (after a reconnect: the server may have lost them). */
  readonly forgetAll: Effect.Effect<void>
  /** Trims a stream now by its retention (or the given one); answers how many entries were removed. */
  readonly trim: (stream: string, retention?: Retention) => Effect.Effect<number, Errors.SubscribeError>
  /** Deletes a stream with its groups. */
  readonly deleteStream: (stream: string) => Effect.Effect<void, Errors.SubscribeError>
  /** The number of entries in a stream (`XLEN`). */
  readonly length: (stream: string) => Effect.Effect<number, Errors.SubscribeError>
  /** How many entries a group holds delivered and unacknowledged (`XPENDING` summary). */
  readonly pending: (stream: string, group: string) => Effect.Effect<number, Errors.SubscribeError>
}

/**
 * The topology service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisTopology } from "@switchyard/redis"
 * const length = RedisTopology.RedisTopology.use((t) => t.length("orders"))
 * ```
 * @since 0.1.0
 */
export class RedisTopology extends Context.Service<RedisTopology, RedisTopologyShape>()("@switchyard/redis/RedisTopology") {}

const subscribeError = (stream: string, context: string) => (cause: unknown) =>
  new CoreErrors.SubscribeError({ destination: stream, reason: reasonOf(cause, context), cause })

/**
 * The `XADD`/`XTRIM` trim arguments of a retention at `now` (epoch ms).
 *
 * @example
 * ```ts
 * import { RedisTopology } from "@switchyard/redis"
 * RedisTopology.trimArgsOf({ maxLen: 1000 }, Date.now()) // ["MAXLEN", "~", "1000"]
 * ```
 * @since 0.1.0
 */
export const trimArgsOf = (retention: Retention | undefined, now: number): ReadonlyArray<string> => {
  if (retention === undefined) return []
  const how = retention.exact === true ? "=" : "~"
  if (retention.maxLen !== undefined) return ["MAXLEN", how, String(Math.max(0, Math.floor(retention.maxLen)))]
  if (retention.maxAge !== undefined) {
    const minId = Math.max(0, now - Duration.toMillis(Duration.fromInputUnsafe(retention.maxAge)))
    return ["MINID", how, String(minId)]
  }
  return []
}

/**
 * Builds the topology on the connection; declared groups are created at once.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RedisTopology } from "@switchyard/redis"
 * const topology = Layer.effect(RedisTopology.RedisTopology, RedisTopology.make)
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<RedisTopologyShape, Errors.SubscribeError, RedisConnection | Scope.Scope> = Effect.gen(
  function*() {
    const connection = yield* RedisConnection
    const { redis, resolved } = connection
    const options = resolved.options
    // dead-letter streams wait for an operator: the default retention does not trim them (declare one to)
    const specFor = (stream: string): StreamSpec =>
      options.streams?.[stream] ?? (stream.endsWith(".dlq") ? {} : options.defaultStream ?? {})
    const groups = yield* Provision.groups(redis)
    const ensureGroup = (stream: string, group: string, startFrom: Broker.StartFrom) =>
      groups.ensure({ stream, group, startFrom })
    const trim = (stream: string, retention?: Retention) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const args = trimArgsOf(retention ?? specFor(stream).retention, now)
        return args.length === 0
          ? Effect.succeed(0)
          : redis.send("XTRIM", stream, ...args).pipe(Effect.map(Replies.integer), Effect.mapError(subscribeError(stream, "XTRIM")))
      })
    for (const [stream, spec] of Object.entries(options.streams ?? {})) {
      for (const [group, startFrom] of Object.entries(spec.groups ?? {})) yield* ensureGroup(stream, group, startFrom)
    }
    return RedisTopology.of({
      specFor,
      trimArgs: (stream) => Effect.map(Clock.currentTimeMillis, (now) => trimArgsOf(specFor(stream).retention, now)),
      ensureGroup,
      forgetAll: groups.invalidateAll,
      trim,
      deleteStream: (stream) =>
        redis.send("DEL", stream).pipe(
          Effect.mapError(subscribeError(stream, "DEL")),
          Effect.andThen(groups.invalidateAll)
        ),
      length: (stream) => redis.send("XLEN", stream).pipe(Effect.map(Replies.integer), Effect.mapError(subscribeError(stream, "XLEN"))),
      pending: (stream, group) =>
        redis.send<unknown>("XPENDING", stream, group).pipe(
          Effect.map((reply) => Array.isArray(reply) ? Replies.integer(reply[0]) : 0),
          Effect.mapError(subscribeError(stream, "XPENDING"))
        )
    })
  }
)

/**
 * The topology as a layer over `RedisConnection`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RedisConnection, RedisTopology } from "@switchyard/redis"
 * const layer = RedisTopology.layer.pipe(Layer.provideMerge(RedisConnection.layer()))
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<RedisTopology, Errors.ConnectionError, RedisConnection> = Layer.effect(
  RedisTopology,
  make.pipe(Effect.mapError((e) => new CoreErrors.ConnectionError({ broker: "redis", reason: e.reason, cause: e })))
)
