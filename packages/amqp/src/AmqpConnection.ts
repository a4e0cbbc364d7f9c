/**
 * The RabbitMQ connection: one amqplib connection per Layer, supervised by the adapter kit's `Supervisor`
 * (re-established on the reconnect `Schedule` when it drops), with the connection's topology declared on
 * every (re)connection and what was provisioned on first use forgotten after a reconnect (declared again on
 * the next use). {@link AmqpConnectionShape.current} waits while a reconnect is under way.
 *
 * @since 0.1.0
 */
import * as amqp from "amqplib"
import type { Channel, ChannelModel, ConfirmChannel, Options as AmqpOptions, SocketOptions } from "amqplib"
import { Errors } from "@switchyard/core"
import { ConnectionOptions, Supervisor } from "@switchyard/core/adapter"
import type { Scope } from "effect"
import { Config, Context, Deferred, Duration, Effect, Exit, Layer, Redacted, Ref, Result, Schedule, Stream } from "effect"
import type * as AmqpTopology from "./AmqpTopology.ts"
import * as Channels from "./internal/channel.ts"
import * as AmqpErrors from "./internal/errors.ts"
import * as Provision from "./internal/provision.ts"

/**
 * Connection options: the shared `ConnectionOptions.CommonOptions` (`connectTimeout`, `tls`, `username`,
 * `password`, `reconnectSchedule`) plus AMQP's own. Give either a `url` (`amqp://user:pass@host:5672/vhost`,
 * as a `Redacted` when it holds a password) or `hostname`/`port`/`vhost`; explicit fields override the URL's.
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
export interface Options extends ConnectionOptions.CommonOptions {
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly hostname?: string | undefined
  readonly port?: number | undefined
  readonly vhost?: string | undefined
  /** Heartbeat interval in seconds (default 15). */
  readonly heartbeatSeconds?: number | undefined
  /** Shown in the RabbitMQ management UI (`connection_name` client property). */
  readonly connectionName?: string | undefined
  /** Topology declared on every (re)connection; it takes precedence over auto-provisioning. */
  readonly topology?: AmqpTopology.Topology | undefined
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
  /** The connection's topology (declared on every connection). */
  readonly topology: AmqpTopology.Topology
  /** The current connection; waits while reconnecting, fails once reconnecting gave up. */
  readonly current: Effect.Effect<Live, Errors.ConnectionError>
  /** Every connection generation from the current one on (follow it to re-attach after a reconnect). */
  readonly generations: Stream.Stream<number>
  /**
   * Declares a topology once per connection (the kit's `Provisioner`, keyed by content): concurrent first
   * declarations share one, failures are not remembered, a reconnect forgets them all. A conflicting
   * declaration fails at once with reason `TopologyConflict`.
   */
  readonly declare: (topology: AmqpTopology.Topology) => Effect.Effect<void, Errors.ConnectionError>
  /** Forgets one declaration (what it declared was deleted): the next `declare` of it declares again. */
  readonly forget: (topology: AmqpTopology.Topology) => Effect.Effect<void>
  /** Opens a channel on a connection (an `error` listener is attached). */
  readonly openChannel: (live: Live) => Effect.Effect<Channel, Errors.ConnectionError>
  /** Opens a confirm channel on a connection (an `error` listener is attached). */
  readonly openConfirmChannel: (live: Live) => Effect.Effect<ConfirmChannel, Errors.ConnectionError>
  /** Runs `use` on a fresh channel of the current connection, closed afterwards. */
  readonly withChannel: <A>(use: (channel: Channel) => Effect.Effect<A, Errors.Reason>) => Effect.Effect<A, Errors.ConnectionError>
  /** The reconnect pacing, reused by channels and subscriptions to re-attach. */
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
 * The default reconnect pacing: exponential from 100 ms (×2), capped at 5 s, jittered, forever.
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

const fromUrl = (url: URL | undefined, part: "hostname" | "port" | "username" | "password"): string | undefined =>
  url !== undefined && url[part] !== "" ? (part === "hostname" || part === "port" ? url[part] : decodeURIComponent(url[part])) : undefined

const parseUrl = (url: Options["url"]): Result.Result<URL | undefined, Errors.ConnectionError> =>
  url === undefined ? Result.succeed(undefined) : Result.try({
    try: () => new URL(Redacted.isRedacted(url) ? Redacted.value(url) : url),
    catch: () => ConnectionOptions.invalid("rabbitmq", "url is not a valid URL (amqp://user:pass@host:port/vhost)")
  })

const resolveWith = (options: Options, url: URL | undefined): Resolved => {
  const secure = options.tls !== undefined && options.tls !== false ? true : url?.protocol === "amqps:"
  const protocol = secure ? "amqps" : "amqp"
  const hostname = options.hostname ?? fromUrl(url, "hostname") ?? "127.0.0.1"
  const urlPort = fromUrl(url, "port")
  const port = options.port ?? (urlPort !== undefined ? Number(urlPort) : secure ? 5671 : 5672)
  const vhost = options.vhost ?? (url !== undefined && url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : "/")
  const username = options.username ?? fromUrl(url, "username") ?? "guest"
  const password = options.password ?? Redacted.make(fromUrl(url, "password") ?? "guest")
  const socket: SocketOptions = {
    timeout: ConnectionOptions.connectTimeoutMillis(options),
    noDelay: true,
    clientProperties: { connection_name: options.connectionName ?? "switchyard" },
    ...ConnectionOptions.nodeTls(options.tls)
  }
  return {
    connect: { protocol, hostname, port, vhost, username, heartbeat: options.heartbeatSeconds ?? 15 },
    password,
    socket,
    label: `${protocol}://${username}@${hostname}:${port}/${encodeURIComponent(vhost)}`
  }
}

const resolve = (options: Options): Result.Result<Resolved, Errors.ConnectionError> =>
  Result.flatMap(parseUrl(options.url), (url) => {
    const resolved = resolveWith(options, url)
    const port = resolved.connect.port ?? 0
    return Number.isInteger(port) && port >= 1 && port <= 65535
      ? Result.succeed(resolved)
      : Result.fail(ConnectionOptions.invalid("rabbitmq", `port must be between 1 and 65535, got ${port}`))
  })

/** Kinds that mean "no answer yet": the first connection tries again within `connectTimeout`. */
const noAnswer = (error: Errors.ConnectionError): boolean =>
  error.kind === "Timeout" || error.kind === "BrokerClosed" || error.kind === "Unknown"

const closeQuietly = (close: () => Promise<void>): Effect.Effect<void> =>
  Effect.tryPromise(close).pipe(Effect.timeout("5 seconds"), Effect.ignore)

const attachErrorListener = <C extends Channel>(channel: C): C => {
  // amqplib emits `error` before `close`; without a listener Node throws. The close is what callers watch.
  channel.on("error", () => {})
  return channel
}

/** The parts of the service that connect, shared by its functions. */
interface Connector {
  readonly resolved: Resolved
  readonly topology: AmqpTopology.Topology
  readonly failure: (error: unknown, during: AmqpErrors.During) => Errors.ConnectionError
  readonly counter: Ref.Ref<number>
  readonly services: Context.Context<never>
}

const watchModel = (connector: Connector, model: ChannelModel): Deferred.Deferred<void> => {
  const closed = Deferred.makeUnsafe<void>()
  const log = (effect: Effect.Effect<void>) => {
    Effect.runForkWith(connector.services)(effect)
  }
  model.on("error", () => {})
  model.on("close", () => Deferred.doneUnsafe(closed, Exit.void))
  model.on("blocked", (why: string) => log(Effect.logWarning(`RabbitMQ blocked the connection (publishes wait): ${why}`)))
  model.on("unblocked", () => log(Effect.logInfo("RabbitMQ unblocked the connection")))
  return closed
}

/** Declares the connection's topology on a fresh model (on a channel of its own). */
const declareTopology = (connector: Connector, model: ChannelModel): Effect.Effect<void, Errors.ConnectionError> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({ try: () => model.createChannel().then(attachErrorListener), catch: (e) => connector.failure(e, "operation") }),
    (channel) => Provision.declareOn(channel, connector.topology).pipe(
      Effect.mapError((reason) => Provision.connectionError(connector.resolved.label, reason))
    ),
    (channel) => closeQuietly(() => channel.close())
  )

/** One connection attempt, in the scope given: connect, watch, declare the topology. */
const connectOnce = Effect.fn("AmqpConnection.connect")(function*(connector: Connector) {
  const { resolved } = connector
  const model = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => amqp.connect({ ...resolved.connect, password: Redacted.value(resolved.password) }, resolved.socket),
      catch: (e) => connector.failure(e, "connect")
    }),
    (model) => closeQuietly(() => model.close())
  )
  const closed = watchModel(connector, model)
  yield* declareTopology(connector, model)
  const generation = yield* Ref.updateAndGet(connector.counter, (n) => n + 1)
  return { model, closed, generation } satisfies Live
})

/**
 * A connection, bounded by `connectTimeout`: the broker's answer is final (a refused port too: nothing
 * listens there); only attempts that got no answer at all are tried again.
 */
const connect = (connector: Connector, timeoutMillis: number): Effect.Effect<Live, Errors.ConnectionError, Scope.Scope> =>
  connectOnce(connector).pipe(
    Effect.retry({ schedule: Schedule.spaced("250 millis"), while: noAnswer }),
    Effect.timeoutOrElse({
      duration: Duration.millis(timeoutMillis),
      orElse: () =>
        Effect.fail(Provision.connectionError(connector.resolved.label, Errors.reason("Timeout", `timed out after ${timeoutMillis}ms`)))
    })
  )

/** Logs each reconnect and forgets what was provisioned on the old connection. */
const followGenerations = (
  label: string,
  supervised: Supervisor.Supervised<Live, Errors.ConnectionError>,
  forgetAll: Effect.Effect<void>
) =>
  supervised.generations.pipe(
    Stream.drop(1),
    Stream.runForEach((generation) => forgetAll.pipe(Effect.andThen(Effect.logInfo(`reconnected to ${label} (generation ${generation})`)))),
    Effect.forkScoped
  )

const channelOpener = (connector: Connector) => <C extends Channel>(create: () => Promise<C>) =>
  Effect.tryPromise({
    try: () => create().then(attachErrorListener),
    catch: (e) => connector.failure(e, "operation")
  })

/**
 * Builds the connection service in the current scope: connects, declares the topology, and supervises the
 * connection (reconnect on the schedule, re-declare). Closing the scope closes the connection.
 *
 * The first connection fails at once, with the broker's reason, when the broker answered: refused
 * credentials (`AuthenticationFailed`), a virtual host that does not exist or may not be opened
 * (`NotFound`), a topology that conflicts with what exists (`TopologyConflict`), a refused port
 * (`Unreachable`: nothing listens there). Only attempts that got no answer are retried, within
 * `connectTimeout` (`Timeout`). Options that cannot work fail with reason `Invalid`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpConnection } from "@switchyard/amqp"
 * const program = Effect.scoped(AmqpConnection.make({ url: "amqp://127.0.0.1" }))
 * ```
 * @since 0.1.0
 */
export const make = Effect.fn("AmqpConnection.make")(function*(options: Options) {
  const resolved = yield* Effect.fromResult(resolve(options))
  const secrets = [Redacted.value(resolved.password)]
  const context = { vhost: resolved.connect.vhost, username: resolved.connect.username, secrets }
  const reconnectSchedule = options.reconnectSchedule ?? defaultReconnectSchedule
  const connector: Connector = {
    resolved,
    topology: options.topology ?? {},
    failure: (error, during) =>
      Provision.connectionError(resolved.label, AmqpErrors.reasonOf(error, during, AmqpErrors.describe(error, context))),
    counter: yield* Ref.make(0),
    services: yield* Effect.context<never>()
  }
  const supervised = yield* Supervisor.make({
    acquire: connect(connector, ConnectionOptions.connectTimeoutMillis(options)).pipe(
      Effect.tapError((e) => Effect.logDebug(`connection attempt failed: ${e.reason.message}`))
    ),
    lost: (live) =>
      Deferred.await(live.closed).pipe(Effect.andThen(Effect.logWarning(`connection to ${resolved.label} lost; reconnecting`))),
    schedule: reconnectSchedule
  })
  yield* Effect.logDebug(`connected to ${resolved.label}`)
  const current = Channels.liveOf(supervised)
  const open = channelOpener(connector)
  const withChannel: AmqpConnectionShape["withChannel"] = (use) =>
    Effect.acquireUseRelease(
      Effect.flatMap(current, (live) => open(() => live.model.createChannel())),
      (channel) => Effect.mapError(use(channel), (reason) => Provision.connectionError(resolved.label, reason)),
      (channel) => closeQuietly(() => channel.close())
    )
  const provisioner = yield* Provision.make((topology) => withChannel((channel) => Provision.declareOn(channel, topology)))
  yield* followGenerations(resolved.label, supervised, provisioner.invalidateAll)
  return AmqpConnection.of({
    label: resolved.label,
    topology: connector.topology,
    current,
    generations: supervised.generations,
    declare: provisioner.ensure,
    forget: provisioner.invalidate,
    openChannel: (live) => open(() => live.model.createChannel()),
    openConfirmChannel: (live) => open(() => live.model.createConfirmChannel()),
    withChannel,
    reconnectSchedule
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
 * The connection as a Layer, from configuration (a `Config.Wrap<Options>`; by default {@link config}). A
 * missing or malformed value fails with a `ConnectionError` of reason `Invalid`.
 *
 * @example
 * ```ts
 * import { AmqpConnection } from "@switchyard/amqp"
 * const ConnectionLive = AmqpConnection.layerConfig(AmqpConnection.config("ORDERS_AMQP"))
 * ```
 * @since 0.3.0
 */
export const layerConfig = (
  options: Config.Wrap<Options> = config()
): Layer.Layer<AmqpConnection, Errors.ConnectionError> =>
  Layer.effect(AmqpConnection, Effect.flatMap(ConnectionOptions.fromConfig("rabbitmq", options), make))

const optional = <A>(value: { readonly _tag: "Some"; readonly value: A } | { readonly _tag: "None" }): A | undefined =>
  value._tag === "Some" ? value.value : undefined

/**
 * Connection options from configuration (environment variables by default): `<P>_URL` (redacted) or
 * `<P>_HOST`, `<P>_PORT`, `<P>_VHOST`, plus the shared `<P>_USERNAME`, `<P>_PASSWORD` (redacted), `<P>_TLS`,
 * `<P>_CONNECT_TIMEOUT` (a duration), and `<P>_HEARTBEAT` (seconds), `<P>_CONNECTION_NAME`. The prefix
 * `P` is `AMQP` by default.
 *
 * @example
 * ```ts
 * import { AmqpConnection } from "@switchyard/amqp"
 * const options = AmqpConnection.config() // Config<AmqpConnection.Options>
 * ```
 * @since 0.1.0
 */
export const config = (prefix = "AMQP"): Config.Config<Options> =>
  Config.all({
    common: ConnectionOptions.commonConfig(prefix),
    url: Config.option(Config.Redacted(`${prefix}_URL`)),
    hostname: Config.option(Config.String(`${prefix}_HOST`)),
    port: Config.option(Config.Port(`${prefix}_PORT`)),
    vhost: Config.option(Config.String(`${prefix}_VHOST`)),
    heartbeatSeconds: Config.option(Config.Int(`${prefix}_HEARTBEAT`)),
    connectionName: Config.option(Config.String(`${prefix}_CONNECTION_NAME`))
  }).pipe(Config.map((c): Options => ({
    ...c.common,
    url: optional(c.url),
    hostname: optional(c.hostname),
    port: optional(c.port),
    vhost: optional(c.vhost),
    heartbeatSeconds: optional(c.heartbeatSeconds),
    connectionName: optional(c.connectionName)
  })))
