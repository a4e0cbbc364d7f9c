/**
 * The node-redis client as a scoped service, built on `@effect/platform-node`'s `NodeRedis` layer (which
 * also provides effect's `Redis` service, `effect/persistence/Redis`): one shared connection for publishes,
 * acknowledgements and admin commands, and a dedicated connection per subscription for its blocking
 * `XREADGROUP` ({@link RedisConnectionShape.dedicated}). Options use the common vocabulary of every
 * Switchyard adapter (`ConnectionOptions.CommonOptions`: `connectTimeout`, `tls`, `username` / `password`,
 * `reconnectSchedule`) plus Redis's own (`url` or `host`/`port`, `db`, `clientName`) and the consumer
 * settings (`ackDeadline`, `claimInterval`, `block`, `deliveryLimit`).
 *
 * @since 0.1.0
 */
import { NodeRedis } from "@effect/platform-node"
import { Config, Context, Duration, Effect, Layer, Option, Schedule, type Scope } from "effect"
import { Redis } from "effect/persistence"
import { Redacted } from "effect"
import type { Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import type { createClient } from "redis"
import { connectionError } from "./internal/errors.ts"
import type { StreamSpec } from "./RedisTopology.ts"

/**
 * The node-redis client type (as `NodeRedis` creates it).
 *
 * @since 0.1.0
 */
export type Client = ReturnType<typeof createClient>

type ClientOptions = NonNullable<Parameters<typeof createClient>[0]>

/**
 * Options of the Redis adapter. Nothing is required: the default is `redis://127.0.0.1:6379`, database 0.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { RedisConnection } from "@switchyard/redis"
 * const options: RedisConnection.Options = {
 *   host: "redis.internal",
 *   port: 6380,
 *   db: 2,
 *   username: "orders",
 *   password: Redacted.make("s3cret"),
 *   tls: true,
 *   ackDeadline: "30 seconds",
 *   streams: { orders: { retention: { maxLen: 1_000_000 } } }
 * }
 * ```
 * @since 0.1.0
 */
export interface Options extends ConnectionOptions.CommonOptions {
  /** `redis://[user:pass@]host:port/db` or `rediss://…` (TLS); `host`/`port`/`db` and the credentials override its parts. */
  readonly url?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** The logical database (`SELECT`), default 0. */
  readonly db?: number | undefined
  /** `CLIENT SETNAME` of the connections (default `switchyard`). */
  readonly clientName?: string | undefined
  /**
   * How long a delivery may stay unacknowledged before another member of its group may claim it
   * (`XAUTOCLAIM` min-idle-time), default 30 seconds. A member keeps what it is still handling from expiring.
   */
  readonly ackDeadline?: Duration.Input | undefined
  /** How often a member looks for claimable deliveries of its group (`XAUTOCLAIM`), default 1 second. */
  readonly claimInterval?: Duration.Input | undefined
  /** How long one `XREADGROUP` waits for new entries (`BLOCK`), default 1 second. */
  readonly block?: Duration.Input | undefined
  /**
   * Deliveries of one entry that may run a handler (default 10): the delivery after that is dead-lettered by
   * the `Consumer` (it was claimed from crashed or stalled members, or nacked, that many times).
   */
  readonly deliveryLimit?: number | undefined
  /** Declared streams: retention and groups (see `RedisTopology.StreamSpec`). */
  readonly streams?: Readonly<Record<string, StreamSpec>> | undefined
  /**
   * Retention of streams not declared in `streams` (default: none, the stream grows until trimmed). Dead-letter
   * streams (`<name>.dlq`) are not trimmed by it: declare them in `streams` to give them a retention.
   */
  readonly defaultStream?: StreamSpec | undefined
}

/**
 * Options with every default filled in.
 *
 * @since 0.1.0
 */
export interface Resolved {
  readonly options: Options
  readonly ackDeadline: Duration.Duration
  readonly claimInterval: Duration.Duration
  readonly block: Duration.Duration
  readonly deliveryLimit: number | undefined
  /** How a lost subscription connection is re-established (`reconnectSchedule`, default exponential from 100 ms up to 2 s, 60 times). */
  readonly reconnectSchedule: Schedule.Schedule<unknown, unknown>
  /** `host:port/db`, without credentials (for errors and logs). */
  readonly address: string
}

const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(2)))),
  Schedule.jittered,
  Schedule.upTo({ times: 60 })
)

const duration = (input: Duration.Input | undefined, fallback: Duration.Input): Duration.Duration =>
  Duration.fromInputUnsafe(input ?? fallback)

const parseUrl = (url: string | undefined): URL | undefined => (url === undefined || !URL.canParse(url) ? undefined : new URL(url))

/**
 * Fills in the defaults; fails with `ConnectionError` reason `Invalid` for options that cannot work.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisConnection } from "@switchyard/redis"
 * const resolved = RedisConnection.resolve({ url: "redis://127.0.0.1:6379/1" })
 * ```
 * @since 0.1.0
 */
export const resolve = (options: Options): Effect.Effect<Resolved, Errors.ConnectionError> =>
  Effect.gen(function*() {
    const invalid = (message: string) => ConnectionOptions.invalid("redis", message)
    if (options.url !== undefined) {
      const url = parseUrl(options.url)
      if (url === undefined || (url.protocol !== "redis:" && url.protocol !== "rediss:")) {
        return yield* invalid("url must be redis://… or rediss://…")
      }
    }
    if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)) {
      return yield* invalid(`port must be between 1 and 65535, got ${options.port}`)
    }
    if (options.db !== undefined && (!Number.isInteger(options.db) || options.db < 0)) {
      return yield* invalid(`db must be a non-negative integer, got ${options.db}`)
    }
    if (options.deliveryLimit !== undefined && !(options.deliveryLimit >= 1)) {
      return yield* invalid(`deliveryLimit must be at least 1, got ${options.deliveryLimit}`)
    }
    const ackDeadline = duration(options.ackDeadline, "30 seconds")
    if (Duration.toMillis(ackDeadline) < 100) return yield* invalid("ackDeadline must be at least 100 millis")
    const url = parseUrl(options.url)
    const host = options.host ?? (url?.hostname || "127.0.0.1")
    const port = options.port ?? (url?.port ? Number(url.port) : 6379)
    const db = options.db ?? (url !== undefined && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0)
    const limit = options.deliveryLimit ?? 10
    return {
      options,
      ackDeadline,
      claimInterval: duration(options.claimInterval, "1 second"),
      block: duration(options.block, "1 second"),
      deliveryLimit: Number.isFinite(limit) ? limit : undefined,
      reconnectSchedule: options.reconnectSchedule ?? defaultReconnectSchedule,
      address: `${host}:${port}/${db}`
    }
  })

/**
 * The node-redis client options of these options (secrets unwrapped only here).
 *
 * @example
 * ```ts
 * import { RedisConnection } from "@switchyard/redis"
 * const clientOptions = RedisConnection.clientOptions({ host: "127.0.0.1", port: 6379, tls: true })
 * ```
 * @since 0.1.0
 */
export const clientOptions = (options: Options): ClientOptions => {
  const url = parseUrl(options.url)
  const tls = options.tls ?? (url?.protocol === "rediss:" ? true : undefined)
  const nodeTls = ConnectionOptions.nodeTls(tls)
  const password = options.password !== undefined
    ? Redacted.value(options.password)
    : url !== undefined && url.password !== ""
    ? decodeURIComponent(url.password)
    : undefined
  const username = options.username ?? (url !== undefined && url.username !== "" ? decodeURIComponent(url.username) : undefined)
  const host = options.host ?? (url?.hostname || "127.0.0.1")
  const port = options.port ?? (url?.port ? Number(url.port) : 6379)
  const db = options.db ?? (url !== undefined && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined)
  const connectTimeout = ConnectionOptions.connectTimeoutMillis(options)
  return {
    name: options.clientName ?? "switchyard",
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(db !== undefined ? { database: db } : {}),
    socket: nodeTls !== undefined
      ? { host, port, connectTimeout, tls: true, ...nodeTls }
      : { host, port, connectTimeout }
  }
}

/**
 * The connection's shape.
 *
 * @since 0.1.0
 */
export interface RedisConnectionShape {
  /** The shared node-redis client (`NodeRedis`'s), reconnecting by itself. */
  readonly client: Client
  /** effect's `Redis` service on the same client (text commands). */
  readonly redis: Redis.Redis["Service"]
  readonly resolved: Resolved
  /**
   * A dedicated connection (a `duplicate` of the shared client that does not reconnect by itself), destroyed
   * when the scope closes: what a subscription's blocking reads run on, supervised for reconnects.
   */
  readonly dedicated: Effect.Effect<Client, Errors.ConnectionError, Scope.Scope>
}

/**
 * The connected client.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisConnection } from "@switchyard/redis"
 * const address = RedisConnection.RedisConnection.useSync((c) => c.resolved.address)
 * ```
 * @since 0.1.0
 */
export class RedisConnection extends Context.Service<RedisConnection, RedisConnectionShape>()(
  "@switchyard/redis/RedisConnection"
) {}

const dedicatedOf = (client: Client, address: string): Effect.Effect<Client, Errors.ConnectionError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const connection = client.duplicate({ socket: { ...client.options?.socket, reconnectStrategy: false } })
        // node-redis rethrows an `error` event without a listener; losses are watched through `end`
        connection.on("error", () => undefined)
        await connection.connect()
        return connection
      },
      catch: (cause) => connectionError(address, cause, "dedicated connection")
    }),
    (connection) => Effect.sync(() => connection.isOpen ? connection.destroy() : undefined)
  )

/**
 * Connects: the `NodeRedis` client (also provided as effect's `Redis` and `NodeRedis` services by
 * {@link layer}), closed with the scope. Bad options fail with `ConnectionError` reason `Invalid`; an
 * unreachable server with reason `Unreachable`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisConnection } from "@switchyard/redis"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const context = yield* RedisConnection.makeContext({ url: "redis://127.0.0.1:6379" })
 * }))
 * ```
 * @since 0.1.0
 */
export const makeContext = Effect.fn("RedisConnection.make")(function*(
  options: Options
): Effect.fn.Return<Context.Context<RedisConnection | Redis.Redis | NodeRedis.NodeRedis>, Errors.ConnectionError, Scope.Scope> {
  const resolved = yield* resolve(options)
  const context = yield* Layer.build(NodeRedis.layer(clientOptions(options))).pipe(
    Effect.mapError((error) => connectionError(resolved.address, error, "connect"))
  )
  const node = Context.get(context, NodeRedis.NodeRedis)
  const redis = Context.get(context, Redis.Redis)
  const shape = RedisConnection.of({
    client: node.client,
    redis,
    resolved,
    dedicated: dedicatedOf(node.client, resolved.address)
  })
  return Context.add(context, RedisConnection, shape)
})

/**
 * The connection as a layer: `RedisConnection`, plus effect's `Redis` and `NodeRedis` services on the same
 * client (for `RedisKeyValueStore`, `Persistence.layerBackingRedis` and anything else built on them).
 *
 * @example
 * ```ts
 * import { RedisConnection } from "@switchyard/redis"
 * const layer = RedisConnection.layer({ url: "redis://127.0.0.1:6379" })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<RedisConnection | Redis.Redis | NodeRedis.NodeRedis, Errors.ConnectionError> =>
  Layer.effectContext(makeContext(options))

/**
 * The connection layer from configuration (e.g. {@link config}); bad configuration fails with
 * `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { RedisConnection } from "@switchyard/redis"
 * const layer = RedisConnection.layerConfig(RedisConnection.config())
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<RedisConnection | Redis.Redis | NodeRedis.NodeRedis, Errors.ConnectionError> =>
  Layer.effectContext(Effect.flatMap(ConnectionOptions.fromConfig("redis", config), makeContext))

const some = <K extends string, A>(key: K, option: Option.Option<A>): { readonly [P in K]?: A } =>
  (Option.isSome(option) ? { [key]: option.value } : {}) as { readonly [P in K]?: A }

/**
 * The options read from the environment (prefix `REDIS` by default): `<P>_URL`, `<P>_HOST`, `<P>_PORT`,
 * `<P>_DB`, `<P>_CLIENT_NAME`, `<P>_USERNAME`, `<P>_PASSWORD` (redacted), `<P>_TLS`, and durations
 * (`"30 seconds"`): `<P>_CONNECT_TIMEOUT`, `<P>_ACK_DEADLINE`, `<P>_CLAIM_INTERVAL`, `<P>_BLOCK`; and
 * `<P>_DELIVERY_LIMIT`.
 *
 * @example
 * ```ts
 * import { ConfigProvider } from "effect"
 * import { RedisConnection } from "@switchyard/redis"
 * const options = RedisConnection.config().parse(ConfigProvider.fromEnvRecord({ REDIS_URL: "redis://127.0.0.1:6379" }))
 * ```
 * @since 0.1.0
 */
export const config = (prefix = "REDIS"): Config.Config<Options> =>
  Config.all({
    common: ConnectionOptions.commonConfig(prefix),
    url: Config.option(Config.String(`${prefix}_URL`)),
    host: Config.option(Config.String(`${prefix}_HOST`)),
    port: Config.option(Config.Port(`${prefix}_PORT`)),
    db: Config.option(Config.Int(`${prefix}_DB`)),
    clientName: Config.option(Config.String(`${prefix}_CLIENT_NAME`)),
    ackDeadline: Config.option(Config.Duration(`${prefix}_ACK_DEADLINE`)),
    claimInterval: Config.option(Config.Duration(`${prefix}_CLAIM_INTERVAL`)),
    block: Config.option(Config.Duration(`${prefix}_BLOCK`)),
    deliveryLimit: Config.option(Config.Int(`${prefix}_DELIVERY_LIMIT`))
  }).pipe(
    Config.map((c): Options => ({
      ...c.common,
      ...some("url", c.url),
      ...some("host", c.host),
      ...some("port", c.port),
      ...some("db", c.db),
      ...some("clientName", c.clientName),
      ...some("ackDeadline", c.ackDeadline),
      ...some("claimInterval", c.claimInterval),
      ...some("block", c.block),
      ...some("deliveryLimit", c.deliveryLimit)
    }))
  )
