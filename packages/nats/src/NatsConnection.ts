/**
 * The NATS connection as a scoped service: configured as data (servers, name, auth, TLS, reconnect
 * policy) or from `Config`, status changes observable as a Stream and logged, drained on shutdown.
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
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Stream } from "effect"
import { reason } from "./internal/envelope.ts"
import { kindOf, redact, redactCause, redactUrl, urlSecrets } from "./internal/errors.ts"

/**
 * How the client authenticates. Secrets are `Redacted` and never logged.
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
  | { readonly _tag: "UserPassword"; readonly user: string; readonly password: Redacted.Redacted<string> }
  | { readonly _tag: "NKey"; readonly seed: Redacted.Redacted<string> }
  | { readonly _tag: "Creds"; readonly creds: Redacted.Redacted<string> }

/**
 * TLS settings: file paths or PEM contents; a server that requires TLS is upgraded to it automatically.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@switchyard/nats"
 * const tls: NatsConnection.Tls = { caFile: "/etc/nats/ca.pem" }
 * ```
 * @since 0.1.0
 */
export interface Tls {
  /** CA certificate(s) to trust, as a file path or as PEM contents (`ca`). */
  readonly caFile?: string | undefined
  readonly ca?: string | undefined
  /** Client certificate for mutual TLS, as a file path or as PEM contents (`cert`). */
  readonly certFile?: string | undefined
  readonly cert?: string | undefined
  /** The client certificate's private key, as a file path or as PEM contents (`key`, kept redacted). */
  readonly keyFile?: string | undefined
  readonly key?: Redacted.Redacted<string> | undefined
  readonly handshakeFirst?: boolean | undefined
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * Reconnect policy. Defaults: reconnect forever, every 2 seconds with jitter.
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
 * Connection options.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@switchyard/nats"
 * const options: NatsConnection.Options = { servers: "nats://127.0.0.1:4222", name: "orders-service" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly servers: string | ReadonlyArray<string>
  readonly name?: string | undefined
  readonly auth?: Auth | undefined
  readonly tls?: Tls | undefined
  readonly reconnect?: Reconnect | undefined
  /** Connect timeout (default 10 seconds). */
  readonly timeout?: Duration.Input | undefined
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

/** @internal */
export const toNodeOptions = (options: Options): NodeConnectionOptions => {
  const reconnect = options.reconnect ?? {}
  const opts: NodeConnectionOptions = {
    servers: typeof options.servers === "string" ? options.servers.split(",") : [...options.servers],
    reconnect: reconnect.enabled ?? true,
    maxReconnectAttempts: reconnect.maxAttempts ?? -1,
    reconnectTimeWait: Duration.toMillis(reconnect.wait ?? "2 seconds"),
    timeout: Duration.toMillis(options.timeout ?? "10 seconds"),
    noAsyncTraces: !(options.asyncTraces ?? false)
  }
  if (reconnect.jitter !== undefined) opts.reconnectJitter = Duration.toMillis(reconnect.jitter)
  if (options.pingInterval !== undefined) opts.pingInterval = Duration.toMillis(options.pingInterval)
  if (options.name !== undefined) opts.name = options.name
  const auth = options.auth
  if (auth !== undefined) {
    switch (auth._tag) {
      case "Token":
        opts.token = Redacted.value(auth.token)
        break
      case "UserPassword":
        opts.user = auth.user
        opts.pass = Redacted.value(auth.password)
        break
      case "NKey":
        opts.authenticator = nkeyAuthenticator(encoder.encode(Redacted.value(auth.seed)))
        break
      case "Creds":
        opts.authenticator = credsAuthenticator(encoder.encode(Redacted.value(auth.creds)))
        break
    }
  }
  if (options.tls !== undefined) {
    const tls: NonNullable<NodeConnectionOptions["tls"]> = {}
    if (options.tls.caFile !== undefined) tls.caFile = options.tls.caFile
    if (options.tls.certFile !== undefined) tls.certFile = options.tls.certFile
    if (options.tls.keyFile !== undefined) tls.keyFile = options.tls.keyFile
    if (options.tls.ca !== undefined) tls.ca = options.tls.ca
    if (options.tls.cert !== undefined) tls.cert = options.tls.cert
    if (options.tls.key !== undefined) tls.key = Redacted.value(options.tls.key)
    if (options.tls.handshakeFirst !== undefined) tls.handshakeFirst = options.tls.handshakeFirst
    if (options.tls.rejectUnauthorized !== undefined) tls.rejectUnauthorized = options.tls.rejectUnauthorized
    opts.tls = tls
  }
  return opts
}

const serverList = (options: Options): ReadonlyArray<string> =>
  typeof options.servers === "string" ? options.servers.split(",") : options.servers

/** The servers for messages and error fields: credentials in the URLs redacted. */
const describeServers = (options: Options): string => serverList(options).map(redactUrl).join(",")

/** Every secret the options carry (URL passwords and tokens, auth secrets), to keep out of errors and logs. */
const secretsOf = (options: Options): ReadonlyArray<string> => {
  const secrets = serverList(options).flatMap(urlSecrets)
  const auth = options.auth
  if (auth === undefined) return secrets
  switch (auth._tag) {
    case "Token":
      return [...secrets, Redacted.value(auth.token)]
    case "UserPassword":
      return [...secrets, Redacted.value(auth.password)]
    case "NKey":
      return [...secrets, Redacted.value(auth.seed)]
    case "Creds":
      return [...secrets, Redacted.value(auth.creds)]
  }
}

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
export const make = Effect.fnUntraced(function*(options: Options) {
  const secrets = secretsOf(options)
  const nc = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => connect(toNodeOptions(options)),
      catch: (cause) =>
        new Errors.ConnectionError({
          broker: `nats(${describeServers(options)})`,
          reason: redact(reason(cause), secrets),
          kind: kindOf(cause),
          cause: redactCause(cause, secrets)
        })
    }),
    (nc) =>
      Effect.promise(() => nc.isClosed() ? Promise.resolve() : nc.drain().catch(() => nc.close())).pipe(
        Effect.andThen(Effect.logDebug("nats connection drained")),
        Effect.annotateLogs({ broker: "nats" })
      )
  )
  const statusChanges: Stream.Stream<Status> = Stream.suspend(() =>
    Stream.fromAsyncIterable(nc.status(), (cause) => cause)
  ).pipe(Stream.orDie)
  yield* statusChanges.pipe(
    Stream.runForEach((status) => {
      switch (status.type) {
        case "disconnect":
          return Effect.logWarning("nats disconnected", { server: redactUrl(status.server) })
        case "reconnecting":
          return Effect.logDebug("nats reconnecting")
        case "reconnect":
          return Effect.logInfo("nats reconnected", { server: redactUrl(status.server) })
        case "error":
          return Effect.logError("nats error", { error: redact(reason(status.error), secrets) })
        case "ldm":
          return Effect.logWarning("nats server entering lame duck mode", { server: redactUrl(status.server) })
        case "slowConsumer":
          return Effect.logWarning("nats slow consumer", { subject: status.sub.getSubject(), pending: status.pending })
        default:
          return Effect.void
      }
    }),
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

/**
 * Connection options from configuration (environment variables by default):
 * `NATS_SERVERS` (comma separated, default `nats://127.0.0.1:4222`), `NATS_NAME`, `NATS_TOKEN`,
 * `NATS_USER` + `NATS_PASSWORD`, `NATS_NKEY_SEED`, `NATS_CREDS` (file contents), `NATS_TLS_CA_FILE`,
 * `NATS_TLS_CERT_FILE`, `NATS_TLS_KEY_FILE`, `NATS_RECONNECT_MAX_ATTEMPTS` (-1), `NATS_RECONNECT_WAIT`
 * (`2 seconds`), `NATS_CONNECT_TIMEOUT` (`10 seconds`). Secrets are read as `Redacted`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsConnection } from "@switchyard/nats"
 * const options = Effect.gen(function*() { return yield* NatsConnection.config })
 * ```
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  servers: Config.String("NATS_SERVERS").pipe(Config.withDefault("nats://127.0.0.1:4222")),
  name: Config.option(Config.String("NATS_NAME")),
  token: Config.option(Config.Redacted("NATS_TOKEN")),
  user: Config.option(Config.String("NATS_USER")),
  password: Config.option(Config.Redacted("NATS_PASSWORD")),
  nkeySeed: Config.option(Config.Redacted("NATS_NKEY_SEED")),
  creds: Config.option(Config.Redacted("NATS_CREDS")),
  caFile: Config.option(Config.String("NATS_TLS_CA_FILE")),
  certFile: Config.option(Config.String("NATS_TLS_CERT_FILE")),
  keyFile: Config.option(Config.String("NATS_TLS_KEY_FILE")),
  maxAttempts: Config.Int("NATS_RECONNECT_MAX_ATTEMPTS").pipe(Config.withDefault(-1)),
  wait: Config.Duration("NATS_RECONNECT_WAIT").pipe(Config.withDefault(Duration.seconds(2))),
  timeout: Config.Duration("NATS_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10)))
}).pipe(Config.map((c): Options => {
  const auth: Auth | undefined = Option.isSome(c.creds)
    ? { _tag: "Creds", creds: c.creds.value }
    : Option.isSome(c.nkeySeed)
    ? { _tag: "NKey", seed: c.nkeySeed.value }
    : Option.isSome(c.token)
    ? { _tag: "Token", token: c.token.value }
    : Option.isSome(c.user) && Option.isSome(c.password)
    ? { _tag: "UserPassword", user: c.user.value, password: c.password.value }
    : undefined
  const tls: Tls | undefined = Option.isSome(c.caFile) || Option.isSome(c.certFile)
    ? {
      caFile: Option.getOrUndefined(c.caFile),
      certFile: Option.getOrUndefined(c.certFile),
      keyFile: Option.getOrUndefined(c.keyFile)
    }
    : undefined
  return {
    servers: c.servers.split(",").map((s) => s.trim()).filter((s) => s.length > 0),
    name: Option.getOrUndefined(c.name),
    auth,
    tls,
    reconnect: { maxAttempts: c.maxAttempts, wait: c.wait },
    timeout: c.timeout
  }
}))

/**
 * The connection as a Layer, configured from {@link config} (or your own `Config`).
 *
 * @example
 * ```ts
 * import { NatsConnection } from "@switchyard/nats"
 * const live = NatsConnection.layerConfig()
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: Config.Config<Options> = config
): Layer.Layer<NatsConnection, Errors.ConnectionError | Config.ConfigError> =>
  Layer.effect(NatsConnection, Effect.flatMap(options, make))
