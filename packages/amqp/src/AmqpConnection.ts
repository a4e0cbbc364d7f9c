/**
 * The RabbitMQ connection: one amqplib connection per Layer, re-established with a backoff `Schedule` when it
 * drops, with the declared topology re-declared after every reconnect. Publishers and subscribers read the
 * current connection through {@link AmqpConnectionShape.current}, which waits while a reconnect is under way.
 *
 * @since 0.1.0
 */
import * as amqp from "amqplib"
import type { Channel, ChannelModel, ConfirmChannel, Options as AmqpOptions, SocketOptions } from "amqplib"
import { Errors } from "@switchyard/core"
import { Cache, Config, Context, Deferred, Duration, Effect, Equal, Exit, Hash, Layer, Redacted, Schedule } from "effect"
import * as AmqpErrors from "./internal/errors.ts"
import * as Topology from "./Topology.ts"

/**
 * TLS settings (`amqps`). Private keys and passphrases are `Redacted`.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { AmqpConnection } from "@switchyard/amqp"
 * const tls: AmqpConnection.TlsOptions = { ca: "-----BEGIN CERTIFICATE-----...", passphrase: Redacted.make("s3cret") }
 * ```
 * @since 0.1.0
 */
export interface TlsOptions {
  readonly ca?: string | undefined
  readonly cert?: string | undefined
  readonly key?: Redacted.Redacted<string> | undefined
  readonly passphrase?: Redacted.Redacted<string> | undefined
  readonly rejectUnauthorized?: boolean | undefined
  readonly servername?: string | undefined
}

/**
 * Connection options. Give either a `url` (`amqp://user:pass@host:5672/vhost`, as a `Redacted` when it holds a
 * password) or `hostname`/`port`/`vhost`/`username`/`password`; explicit fields override the URL's.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { AmqpConnection } from "@switchyard/amqp"
 * const options: AmqpConnection.Options = {
 *   hostname: "127.0.0.1", username: "guest", password: Redacted.make("guest"), connectionName: "billing"
 * }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly hostname?: string | undefined
  readonly port?: number | undefined
  readonly vhost?: string | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  /** `true` for default TLS settings, or explicit settings. */
  readonly tls?: boolean | TlsOptions | undefined
  /** Heartbeat interval in seconds (default 15). */
  readonly heartbeatSeconds?: number | undefined
  /** Shown in the RabbitMQ management UI (`connection_name` client property). */
  readonly connectionName?: string | undefined
  /** Bound on the first connection (including retries of refused connections). Default 10 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** Backoff between reconnect attempts after a drop. Default: exponential from 100 ms, capped at 5 s, jittered, forever. */
  readonly reconnectSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /** Topology declared at start and after every reconnect; it takes precedence over auto-provisioning. */
  readonly topology?: Topology.Topology | undefined
}

/**
 * One established connection. `generation` grows with every reconnect; `closed` completes when it drops.
 *
 * @example
 * ```ts
 * import { Deferred, Effect } from "effect"
 * import { AmqpConnection } from "@switchyard/amqp"
 * const untilDropped = AmqpConnection.AmqpConnection.use((c) => c.current).pipe(
 *   Effect.flatMap((live) => Deferred.await(live.closed))
 * )
 * ```
 * @since 0.1.0
 */
export interface Live {
  readonly model: ChannelModel
  readonly generation: number
  readonly closed: Deferred.Deferred<void>
}

/**
 * The connection service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpConnection } from "@switchyard/amqp"
 * const declareAudit = AmqpConnection.AmqpConnection.use((c) =>
 *   c.declare({ exchanges: [{ name: "audit", type: "fanout" }] })
 * )
 * ```
 * @since 0.1.0
 */
export interface AmqpConnectionShape {
  /** `amqp://user@host:port/vhost`, without secrets; used in logs and errors. */
  readonly label: string
  /** The user-declared topology. */
  readonly topology: Topology.Topology
  /** The current connection; waits while reconnecting, fails once reconnecting gave up. */
  readonly current: Effect.Effect<Live, Errors.ConnectionError>
  /**
   * Declares a topology now and after every reconnect (idempotent, cached by content). Concurrent first
   * declarations of the same topology share one declaration (one channel); failures are not cached, and
   * the cache is cleared on reconnect. A conflicting declaration fails at once with kind `TopologyConflict`.
   */
  readonly declare: (topology: Topology.Topology) => Effect.Effect<void, Errors.ConnectionError>
  /** Opens a channel on the current connection (an `error` listener is attached). */
  readonly openChannel: (live: Live) => Effect.Effect<Channel, Errors.ConnectionError>
  /** Opens a confirm channel on the current connection (an `error` listener is attached). */
  readonly openConfirmChannel: (live: Live) => Effect.Effect<ConfirmChannel, Errors.ConnectionError>
  /** The reconnect backoff, reused by subscriptions to re-attach. */
  readonly reconnectSchedule: Schedule.Schedule<unknown, unknown>
}

/**
 * The connection service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpConnection } from "@switchyard/amqp"
 * const generation = AmqpConnection.AmqpConnection.use((c) => c.current).pipe(Effect.map((live) => live.generation))
 * ```
 * @since 0.1.0
 */
export class AmqpConnection extends Context.Service<AmqpConnection, AmqpConnectionShape>()(
  "@switchyard/amqp/AmqpConnection"
) {}

/**
 * The default reconnect backoff: exponential from 100 ms (×2), capped at 5 s, jittered, forever.
 *
 * @example
 * ```ts
 * import { AmqpConnection } from "@switchyard/amqp"
 * const schedule = AmqpConnection.defaultReconnectSchedule
 * ```
 * @since 0.1.0
 */
export const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
  Schedule.jittered
)

interface Resolved {
  readonly connect: AmqpOptions.Connect
  readonly password: Redacted.Redacted<string>
  readonly socket: SocketOptions
  readonly label: string
}

const resolve = (options: Options): Resolved => {
  const url = options.url === undefined
    ? undefined
    : new URL(Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url)
  const secure = options.tls !== undefined && options.tls !== false
    ? true
    : url?.protocol === "amqps:"
  const hostname = options.hostname ?? (url?.hostname !== undefined && url.hostname !== "" ? url.hostname : "127.0.0.1")
  const port = options.port ?? (url?.port !== undefined && url.port !== "" ? Number(url.port) : secure ? 5671 : 5672)
  const urlVhost = url !== undefined && url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : undefined
  const vhost = options.vhost ?? urlVhost ?? "/"
  const username = options.username ?? (url?.username !== undefined && url.username !== ""
    ? decodeURIComponent(url.username)
    : "guest")
  const password = options.password ??
    Redacted.make(url?.password !== undefined && url.password !== "" ? decodeURIComponent(url.password) : "guest")
  const tls: TlsOptions = typeof options.tls === "object" ? options.tls : {}
  const timeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(options.connectTimeout ?? "10 seconds"))
  const socket: SocketOptions = {
    timeout: timeoutMillis,
    noDelay: true,
    clientProperties: { connection_name: options.connectionName ?? "switchyard" },
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: Redacted.value(tls.key) } : {}),
    ...(tls.passphrase !== undefined ? { passphrase: Redacted.value(tls.passphrase) } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {})
  }
  return {
    connect: {
      protocol: secure ? "amqps" : "amqp",
      hostname,
      port,
      vhost,
      username,
      heartbeat: options.heartbeatSeconds ?? 15
    },
    password,
    socket,
    label: `${secure ? "amqps" : "amqp"}://${username}@${hostname}:${port}/${encodeURIComponent(vhost)}`
  }
}

/** @internal */
export const errorMessage = (error: unknown, secrets: ReadonlyArray<string> = []): string => {
  let message = error instanceof Error ? error.message : String(error)
  for (const secret of secrets) {
    if (secret.length > 0) message = message.split(secret).join("<redacted>")
  }
  return message
}

/** A topology, compared by content: the key of the declaration cache. */
class Declaration implements Equal.Equal {
  constructor(readonly key: string, readonly topology: Topology.Topology) {}
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof Declaration && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.string(this.key)
  }
}

/**
 * Builds the connection service in the current scope: connects, declares the topology, and supervises the
 * connection (reconnect with backoff and re-declare). Closing the scope closes the connection.
 *
 * The first connection fails at once, with the broker's reason and a `kind`, when the broker answered:
 * refused credentials (`AuthenticationFailed`), a virtual host that does not exist or may not be opened
 * (`NotFound`), a topology that conflicts with what exists (`TopologyConflict`), a refused port
 * (`Unreachable`: nothing listens there). Only attempts that got no answer are retried, within
 * `connectTimeout` (`Timeout`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpConnection } from "@switchyard/amqp"
 * const program = Effect.scoped(AmqpConnection.make({ url: "amqp://127.0.0.1" }))
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const resolved = resolve(options)
  const secrets = [Redacted.value(resolved.password)]
  const reconnectSchedule = options.reconnectSchedule ?? defaultReconnectSchedule
  const userTopology = options.topology ?? Topology.empty
  const connectionError = (reason: string, kind: Errors.ErrorKind, cause?: unknown) =>
    new Errors.ConnectionError({ broker: resolved.label, reason, kind, ...(cause === undefined ? {} : { cause }) })
  const failure = (prefix: string, during: "connect" | "operation") => (e: unknown) =>
    connectionError(
      `${prefix}${errorMessage(AmqpErrors.describe(e, { vhost: resolved.connect.vhost, username: resolved.connect.username }), secrets)}`,
      AmqpErrors.classify(e, during)
    )
  /** Declarations that succeeded, re-declared on every new connection. */
  const declared = new Map<string, Topology.Topology>()
  let closing = false
  let generation = 0
  const services = yield* Effect.context<never>()
  const logFromCallback = (effect: Effect.Effect<void>) => {
    Effect.runForkWith(services)(effect)
  }

  const declareOnModel = (model: ChannelModel, topology: Topology.Topology) =>
    Effect.tryPromise({
      try: async () => {
        const channel = await model.createChannel()
        channel.on("error", () => {})
        try {
          await Topology.declareOn(channel, topology)
        } finally {
          await channel.close().catch(() => {})
        }
      },
      catch: failure("declaring topology failed: ", "operation")
    })

  const connectOnce: Effect.Effect<Live, Errors.ConnectionError> = Effect.gen(function*() {
    const model = yield* Effect.tryPromise({
      try: () =>
        amqp.connect(
          { ...resolved.connect, password: Redacted.value(resolved.password) },
          resolved.socket
        ),
      catch: failure("", "connect")
    })
    const closed = Deferred.makeUnsafe<void>()
    model.on("error", () => {})
    model.on("close", () => {
      Deferred.doneUnsafe(closed, Exit.void)
    })
    model.on("blocked", (reason: string) => {
      logFromCallback(Effect.logWarning(`RabbitMQ blocked the connection (publishes wait): ${reason}`))
    })
    model.on("unblocked", () => {
      logFromCallback(Effect.logInfo("RabbitMQ unblocked the connection"))
    })
    const live: Live = { model, generation: ++generation, closed }
    yield* declareOnModel(model, userTopology).pipe(
      Effect.andThen(Effect.forEach(declared.values(), (t) => declareOnModel(model, t), { discard: true })),
      Effect.onError(() => Effect.promise(() => model.close().catch(() => {})))
    )
    return live
  })

  const timeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(options.connectTimeout ?? "10 seconds"))
  // The broker's answer is final on the first connection (a refused port too: nothing listens there); only
  // attempts that got no answer at all are tried again.
  const first = yield* connectOnce.pipe(
    Effect.retry({
      schedule: Schedule.spaced("250 millis"),
      while: (e: Errors.ConnectionError) => e.kind === "Timeout" || e.kind === "BrokerClosed" || e.kind === "Unknown"
    }),
    Effect.timeoutOrElse({
      duration: Duration.millis(timeoutMillis),
      orElse: () => Effect.fail(connectionError(`timed out after ${timeoutMillis}ms`, "Timeout"))
    })
  )
  let current = Deferred.makeUnsafe<Live, Errors.ConnectionError>()
  Deferred.doneUnsafe(current, Effect.succeed(first))
  yield* Effect.logDebug(`connected to ${resolved.label}`)

  const currentLive: Effect.Effect<Live, Errors.ConnectionError> = Effect.suspend(() => Deferred.await(current))

  const declarations = yield* Cache.makeWith(
    (declaration: Declaration) =>
      Effect.flatMap(currentLive, (live) => declareOnModel(live.model, declaration.topology)).pipe(
        Effect.tap(() => Effect.sync(() => declared.set(declaration.key, declaration.topology)))
      ),
    { capacity: Number.POSITIVE_INFINITY, timeToLive: (exit) => (Exit.isSuccess(exit) ? Duration.infinity : Duration.zero) }
  )

  const supervise: Effect.Effect<void> = Effect.gen(function*() {
    while (true) {
      const live = yield* Deferred.await(current)
      yield* Deferred.await(live.closed)
      if (closing) return
      const next = Deferred.makeUnsafe<Live, Errors.ConnectionError>()
      current = next
      yield* Effect.logWarning(`connection to ${resolved.label} lost; reconnecting`)
      const exit = yield* Effect.exit(connectOnce.pipe(
        Effect.tapError((e) => Effect.logDebug(`reconnect attempt failed: ${e.reason}`)),
        Effect.retry(reconnectSchedule)
      ))
      if (closing) {
        if (Exit.isSuccess(exit)) yield* Effect.promise(() => exit.value.model.close().catch(() => {}))
        return
      }
      Deferred.doneUnsafe(next, exit)
      if (Exit.isFailure(exit)) {
        yield* Effect.logError(`giving up reconnecting to ${resolved.label}`)
        return
      }
      // everything declared was declared again on the new connection; later first uses start afresh
      yield* Cache.invalidateAll(declarations)
      yield* Effect.logInfo(`reconnected to ${resolved.label} (generation ${exit.value.generation})`)
    }
  }).pipe(Effect.catchCause(() => Effect.void)) as Effect.Effect<void>

  yield* Effect.forkScoped(supervise)

  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closing = true
      const live = yield* Effect.option(Deferred.await(current).pipe(Effect.timeout("1 second")))
      if (live._tag === "Some") {
        yield* Effect.promise(() => live.value.model.close().catch(() => {})).pipe(
          Effect.timeout("5 seconds"),
          Effect.ignore
        )
      }
    })
  )


  const wrapChannel = <C extends Channel>(create: () => Promise<C>) =>
    Effect.tryPromise({
      try: async () => {
        const channel = await create()
        channel.on("error", () => {})
        return channel
      },
      catch: failure("opening a channel failed: ", "operation")
    })


  return AmqpConnection.of({
    label: resolved.label,
    topology: userTopology,
    current: currentLive,
    reconnectSchedule,
    declare: (topology) => Effect.suspend(() => Cache.get(declarations, new Declaration(JSON.stringify(topology), topology))),
    openChannel: (live) => wrapChannel(() => live.model.createChannel()),
    openConfirmChannel: (live) => wrapChannel(() => live.model.createConfirmChannel())
  })
})

/**
 * The connection as a Layer.
 *
 * @example
 * ```ts
 * import { AmqpConnection } from "@switchyard/amqp"
 * const ConnectionLive = AmqpConnection.layer({ url: "amqp://127.0.0.1:5672" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<AmqpConnection, Errors.ConnectionError> =>
  Layer.effect(AmqpConnection, make(options))

/**
 * Reads connection options from configuration (environment variables by default): `AMQP_URL` (redacted) or
 * `AMQP_HOST`, `AMQP_PORT`, `AMQP_VHOST`, `AMQP_USERNAME`, `AMQP_PASSWORD` (redacted), plus `AMQP_TLS`,
 * `AMQP_HEARTBEAT` (seconds), `AMQP_CONNECTION_NAME`, `AMQP_CONNECT_TIMEOUT` (a duration). Pass a `prefix`
 * to read e.g. `ORDERS_AMQP_URL`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpConnection } from "@switchyard/amqp"
 * const options = AmqpConnection.config() // Config<AmqpConnection.Options>
 * ```
 * @since 0.1.0
 */
export const config = (prefix = "AMQP"): Config.Config<Options> =>
  Config.all({
    url: Config.option(Config.Redacted(`${prefix}_URL`)),
    hostname: Config.option(Config.String(`${prefix}_HOST`)),
    port: Config.option(Config.Port(`${prefix}_PORT`)),
    vhost: Config.option(Config.String(`${prefix}_VHOST`)),
    username: Config.option(Config.String(`${prefix}_USERNAME`)),
    password: Config.option(Config.Redacted(`${prefix}_PASSWORD`)),
    tls: Config.Boolean(`${prefix}_TLS`).pipe(Config.withDefault(false)),
    heartbeatSeconds: Config.option(Config.Int(`${prefix}_HEARTBEAT`)),
    connectionName: Config.option(Config.String(`${prefix}_CONNECTION_NAME`)),
    connectTimeout: Config.option(Config.Duration(`${prefix}_CONNECT_TIMEOUT`))
  }).pipe(Config.map((c): Options => ({
    url: c.url._tag === "Some" ? c.url.value : undefined,
    hostname: c.hostname._tag === "Some" ? c.hostname.value : undefined,
    port: c.port._tag === "Some" ? c.port.value : undefined,
    vhost: c.vhost._tag === "Some" ? c.vhost.value : undefined,
    username: c.username._tag === "Some" ? c.username.value : undefined,
    password: c.password._tag === "Some" ? c.password.value : undefined,
    tls: c.tls,
    heartbeatSeconds: c.heartbeatSeconds._tag === "Some" ? c.heartbeatSeconds.value : undefined,
    connectionName: c.connectionName._tag === "Some" ? c.connectionName.value : undefined,
    connectTimeout: c.connectTimeout._tag === "Some" ? c.connectTimeout.value : undefined
  })))
