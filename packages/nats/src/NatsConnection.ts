/**
 * The NATS connection as a scoped service: configured as data (servers, name, credentials, TLS, reconnect
 * policy) on the shared `ConnectionOptions` vocabulary, or from `Config`; status changes observable as a
 * Stream and logged; drained on shutdown.
 *
 * nats.js reconnects by itself (paced by {@link Reconnect}); subscriptions and JetStream consumers survive
 * a reconnect, so `reconnectSchedule` of the common options is not used on NATS.
 *
 * @since 0.1.0
 */
import {
  connect,
  credsAuthenticator,
  type NatsConnection as RawConnection,
  type NodeConnectionOptions,
  nkeyAuthenticator,
  type Status
} from "@nats-io/transport-node"
import { Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Stream } from "effect"
import { reasonOf, redact, redactCause, redactReason, redactUrl, urlSecrets } from "./internal/errors.ts"

/**
 * NATS-native authentication (user and password are the common `username` / `password` options). Secrets
 * are `Redacted` and never logged.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { NatsConnection } from "@switchyard/nats"
 * const auth: NatsConnection.Auth = { _tag: "Token", token: Redacted.make("s3cr3t") }
 * ```
 * @since 0.1.0
 */
export type Auth =
  | { readonly _tag: "Token"; readonly token: Redacted.Redacted<string> }
  | { readonly _tag: "NKey"; readonly seed: Redacted.Redacted<string> }
  | { readonly _tag: "Creds"; readonly creds: Redacted.Redacted<string> }

/**
 * TLS settings: the common `TlsOptions` (PEM contents) plus NATS's file paths and `handshakeFirst`. A server
 * that requires TLS is upgraded to it automatically.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@switchyard/nats"
 * const tls: NatsConnection.Tls = { caFile: "/etc/nats/ca.pem" }
 * ```
 * @since 0.1.0
 */
export interface Tls extends ConnectionOptions.TlsOptions {
  /** CA certificate(s) to trust, as a file path. */
  readonly caFile?: string | undefined
  /** Client certificate for mutual TLS, as a file path. */
  readonly certFile?: string | undefined
  /** The client certificate's private key, as a file path. */
  readonly keyFile?: string | undefined
  /** TLS before the NATS INFO (the server must be configured with `handshake_first`). */
  readonly handshakeFirst?: boolean | undefined
}

/**
 * nats.js's reconnect policy. Defaults: reconnect forever, every 2 seconds with jitter.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@switchyard/nats"
 * const reconnect: NatsConnection.Reconnect = { maxAttempts: -1, wait: "250 millis" }
 * ```
 * @since 0.1.0
 */
export interface Reconnect {
  readonly enabled?: boolean | undefined
  /** -1 = forever. */
  readonly maxAttempts?: number | undefined
  readonly wait?: Duration.Input | undefined
  readonly jitter?: Duration.Input | undefined
}

/**
 * Connection options: the common ones (`connectTimeout`, `tls`, `username`, `password`) and NATS's own.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@switchyard/nats"
 * const options: NatsConnection.Options = { servers: "nats://127.0.0.1:4222", name: "orders-service", connectTimeout: "5 seconds" }
 * ```
 * @since 0.1.0
 */
export interface Options extends ConnectionOptions.CommonOptions {
  /** Server URLs (a comma-separated string or a list). */
  readonly servers: string | ReadonlyArray<string>
  readonly name?: string | undefined
  /** Token, NKey or creds authentication (user and password: `username` / `password`). */
  readonly auth?: Auth | undefined
  readonly tls?: boolean | Tls | undefined
  readonly reconnect?: Reconnect | undefined
  readonly pingInterval?: Duration.Input | undefined
  /**
   * Capture a stack trace for every request (nats.js `noAsyncTraces: false`). Off by default: it costs
   * about a fifth of the CPU of a JetStream publish.
   */
  readonly asyncTraces?: boolean | undefined
}

/**
 * The connection service: the raw nats.js connection (for native features) and its status changes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsConnection } from "@switchyard/nats"
 * const rtt = Effect.gen(function*() {
 *   const { nc } = yield* NatsConnection.NatsConnection
 *   return yield* Effect.promise(() => nc.rtt())
 * })
 * ```
 * @since 0.1.0
 */
export class NatsConnection extends Context.Service<NatsConnection, {
  readonly nc: RawConnection
  /** Connection status changes (disconnect, reconnecting, reconnect, error, …); each run subscribes anew. */
  readonly statusChanges: Stream.Stream<Status>
}>()("@switchyard/nats/NatsConnection") {}

const encoder = new TextEncoder()

const serverList = (options: Options): ReadonlyArray<string> =>
  typeof options.servers === "string" ? options.servers.split(",").map((s) => s.trim()) : options.servers

const authOptions = (options: Options): Partial<NodeConnectionOptions> => {
  const credentials: Partial<NodeConnectionOptions> = options.username === undefined ? {} : {
    user: options.username,
    ...(options.password !== undefined ? { pass: Redacted.value(options.password) } : {})
  }
  const auth = options.auth
  if (auth === undefined) return credentials
  switch (auth._tag) {
    case "Token":
      return { ...credentials, token: Redacted.value(auth.token) }
    case "NKey":
      return { ...credentials, authenticator: nkeyAuthenticator(encoder.encode(Redacted.value(auth.seed))) }
    case "Creds":
      return { ...credentials, authenticator: credsAuthenticator(encoder.encode(Redacted.value(auth.creds))) }
  }
}

const tlsOptions = (tls: boolean | Tls | undefined): NodeConnectionOptions["tls"] | undefined => {
  const common = ConnectionOptions.nodeTls(tls)
  if (common === undefined || typeof tls !== "object") return common
  return {
    ...common,
    ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
    ...(tls.certFile !== undefined ? { certFile: tls.certFile } : {}),
    ...(tls.keyFile !== undefined ? { keyFile: tls.keyFile } : {}),
    ...(tls.handshakeFirst !== undefined ? { handshakeFirst: tls.handshakeFirst } : {})
  }
}

/** nats.js's options from {@link Options} (secrets unwrapped only here). */
const toNodeOptions = (options: Options): NodeConnectionOptions => {
  const reconnect = options.reconnect ?? {}
  const tls = tlsOptions(options.tls)
  return {
    servers: [...serverList(options)],
    reconnect: reconnect.enabled ?? true,
    maxReconnectAttempts: reconnect.maxAttempts ?? -1,
    reconnectTimeWait: Duration.toMillis(Duration.fromInputUnsafe(reconnect.wait ?? "2 seconds")),
    timeout: ConnectionOptions.connectTimeoutMillis(options),
    noAsyncTraces: !(options.asyncTraces ?? false),
    ...(reconnect.jitter !== undefined ? { reconnectJitter: Duration.toMillis(Duration.fromInputUnsafe(reconnect.jitter)) } : {}),
    ...(options.pingInterval !== undefined
      ? { pingInterval: Duration.toMillis(Duration.fromInputUnsafe(options.pingInterval)) }
      : {}),
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...authOptions(options)
  }
}

/** The servers for messages and error fields: credentials in the URLs redacted. */
const describeServers = (options: Options): string => serverList(options).map(redactUrl).join(",")

const authSecret = (auth: Auth | undefined): ReadonlyArray<string> => {
  if (auth === undefined) return []
  switch (auth._tag) {
    case "Token":
      return [Redacted.value(auth.token)]
    case "NKey":
      return [Redacted.value(auth.seed)]
    case "Creds":
      return [Redacted.value(auth.creds)]
  }
}

/** Every secret the options carry (URL passwords and tokens, auth secrets), to keep out of errors and logs. */
const secretsOf = (options: Options): ReadonlyArray<string> => [
  ...serverList(options).flatMap(urlSecrets),
  ...(options.password !== undefined ? [Redacted.value(options.password)] : []),
  ...authSecret(options.auth)
]

const connectError = (options: Options, secrets: ReadonlyArray<string>) => (cause: unknown) =>
  new Errors.ConnectionError({
    broker: `nats(${describeServers(options)})`,
    reason: redactReason(reasonOf(cause), secrets),
    cause: redactCause(cause, secrets)
  })

const logStatus = (secrets: ReadonlyArray<string>) => (status: Status): Effect.Effect<void> => {
  switch (status.type) {
    case "disconnect":
      return Effect.logWarning("nats disconnected", { server: redactUrl(status.server) })
    case "reconnecting":
      return Effect.logDebug("nats reconnecting")
    case "reconnect":
      return Effect.logInfo("nats reconnected", { server: redactUrl(status.server) })
    case "error":
      return Effect.logError("nats error", { error: redact(reasonOf(status.error).message, secrets) })
    case "ldm":
      return Effect.logWarning("nats server entering lame duck mode", { server: redactUrl(status.server) })
    case "slowConsumer":
      return Effect.logWarning("nats slow consumer", { subject: status.sub.getSubject(), pending: status.pending })
    default:
      return Effect.void
  }
}

const drain = (nc: RawConnection): Effect.Effect<void> =>
  Effect.promise(() => nc.isClosed() ? Promise.resolve() : nc.drain().catch(() => nc.close())).pipe(
    Effect.andThen(Effect.logDebug("nats connection drained")),
    Effect.annotateLogs({ broker: "nats" })
  )

/**
 * Connects; the connection lives in the current scope and is drained (pending publishes and acks
 * flushed, subscriptions finished) when the scope closes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsConnection } from "@switchyard/nats"
 * const program = Effect.scoped(NatsConnection.make({ servers: "nats://127.0.0.1:4222" }))
 * ```
 * @since 0.1.0
 */
export const make = Effect.fn("NatsConnection.make")(function*(options: Options) {
  const secrets = secretsOf(options)
  const nc = yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => connect(toNodeOptions(options)), catch: connectError(options, secrets) }),
    drain
  )
  const statusChanges: Stream.Stream<Status> = Stream.suspend(() =>
    Stream.fromAsyncIterable(nc.status(), (cause) => cause)
  ).pipe(Stream.orDie)
  yield* statusChanges.pipe(
    Stream.runForEach(logStatus(secrets)),
    Effect.annotateLogs({ broker: "nats" }),
    Effect.forkScoped
  )
  return NatsConnection.of({ nc, statusChanges })
})

/**
 * The connection as a Layer.
 *
 * @example
 * ```ts
 * import { NatsConnection } from "@switchyard/nats"
 * const live = NatsConnection.layer({ servers: ["nats://127.0.0.1:4222"], name: "billing" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<NatsConnection, Errors.ConnectionError> =>
  Layer.effect(NatsConnection, make(options))

const authFromConfig = (c: {
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly nkeySeed: Option.Option<Redacted.Redacted<string>>
  readonly creds: Option.Option<Redacted.Redacted<string>>
}): Auth | undefined =>
  Option.isSome(c.creds)
    ? { _tag: "Creds", creds: c.creds.value }
    : Option.isSome(c.nkeySeed)
    ? { _tag: "NKey", seed: c.nkeySeed.value }
    : Option.isSome(c.token)
    ? { _tag: "Token", token: c.token.value }
    : undefined

/**
 * Connection options from configuration (environment variables by default), under a prefix (default
 * `NATS`): the common `<P>_CONNECT_TIMEOUT`, `<P>_USERNAME`, `<P>_PASSWORD`, `<P>_TLS`, and
 * `<P>_SERVERS` (comma separated, default `nats://127.0.0.1:4222`), `<P>_NAME`, `<P>_TOKEN`,
 * `<P>_NKEY_SEED`, `<P>_CREDS` (file contents), `<P>_TLS_CA_FILE`, `<P>_TLS_CERT_FILE`, `<P>_TLS_KEY_FILE`,
 * `<P>_RECONNECT_MAX_ATTEMPTS` (-1), `<P>_RECONNECT_WAIT` (`2 seconds`). Secrets are read as `Redacted`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsConnection } from "@switchyard/nats"
 * const options = Effect.gen(function*() { return yield* NatsConnection.config() })
 * ```
 * @since 0.3.0
 */
export const config = (prefix = "NATS"): Config.Config<Options> =>
  Config.all({
    common: ConnectionOptions.commonConfig(prefix),
    servers: Config.String(`${prefix}_SERVERS`).pipe(Config.withDefault("nats://127.0.0.1:4222")),
    name: Config.option(Config.String(`${prefix}_NAME`)),
    token: Config.option(Config.Redacted(`${prefix}_TOKEN`)),
    nkeySeed: Config.option(Config.Redacted(`${prefix}_NKEY_SEED`)),
    creds: Config.option(Config.Redacted(`${prefix}_CREDS`)),
    caFile: Config.option(Config.String(`${prefix}_TLS_CA_FILE`)),
    certFile: Config.option(Config.String(`${prefix}_TLS_CERT_FILE`)),
    keyFile: Config.option(Config.String(`${prefix}_TLS_KEY_FILE`)),
    maxAttempts: Config.Int(`${prefix}_RECONNECT_MAX_ATTEMPTS`).pipe(Config.withDefault(-1)),
    wait: Config.Duration(`${prefix}_RECONNECT_WAIT`).pipe(Config.withDefault(Duration.seconds(2)))
  }).pipe(Config.map((c): Options => {
    const files = Option.isSome(c.caFile) || Option.isSome(c.certFile) || Option.isSome(c.keyFile)
    const tls: boolean | Tls | undefined = files
      ? {
        caFile: Option.getOrUndefined(c.caFile),
        certFile: Option.getOrUndefined(c.certFile),
        keyFile: Option.getOrUndefined(c.keyFile)
      }
      : c.common.tls
    return {
      ...c.common,
      servers: c.servers.split(",").map((s) => s.trim()).filter((s) => s.length > 0),
      name: Option.getOrUndefined(c.name),
      auth: authFromConfig(c),
      tls,
      reconnect: { maxAttempts: c.maxAttempts, wait: c.wait }
    }
  }))

/**
 * The connection as a Layer, configured from a `Config.Wrap<Options>` (default {@link config}); a bad
 * configuration fails with a `ConnectionError` of reason `Invalid`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { NatsConnection } from "@switchyard/nats"
 * const fromEnv = NatsConnection.layerConfig()
 * const explicit = NatsConnection.layerConfig({ servers: Config.String("ORDERS_NATS_URL") })
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: Config.Wrap<Options> = config()
): Layer.Layer<NatsConnection, Errors.ConnectionError> =>
  Layer.effect(NatsConnection, Effect.flatMap(ConnectionOptions.fromConfig("nats", options), make))
