/**
 * The options vocabulary every adapter shares. Each adapter's `Options` extends {@link CommonOptions} with
 * its client's native fields (an AMQP `url`/`vhost`, NATS `servers`/`auth`, Kafka `brokers`/`clientId`), so the
 * same words mean the same thing on every broker:
 *
 * | option | meaning |
 * | --- | --- |
 * | `connectTimeout` | bound on establishing the first connection (default 10 seconds) |
 * | `tls` | `true` for the platform's defaults, or {@link TlsOptions} (keys and passphrases `Redacted`) |
 * | `username` / `password` | credentials (`password` is `Redacted` and never logged) |
 * | `reconnectSchedule` | pacing of re-connections after a drop |
 *
 * Every adapter's `layerConfig` takes a `Config.Wrap<Options>` (as effect's SQL drivers do) and fails with the
 * same error for a bad configuration on every broker: a `ConnectionError` whose reason is `Invalid`
 * ({@link fromConfig}).
 *
 * @since 0.3.0
 */
import { Config, Duration, Effect, Redacted, type Schedule } from "effect"
import { ConnectionError, reason } from "../Errors.ts"

/**
 * TLS settings. Private keys and passphrases are `Redacted`.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { ConnectionOptions } from "@switchyard/core/adapter"
 * const tls: ConnectionOptions.TlsOptions = { ca: "-----BEGIN CERTIFICATE-----...", passphrase: Redacted.make("s3cret") }
 * ```
 * @since 0.3.0
 */
export interface TlsOptions {
  /** Trusted CA certificates (PEM). */
  readonly ca?: string | undefined
  /** The client certificate (PEM), for mutual TLS. */
  readonly cert?: string | undefined
  /** The client certificate's private key (PEM). */
  readonly key?: Redacted.Redacted<string> | undefined
  /** The private key's passphrase. */
  readonly passphrase?: Redacted.Redacted<string> | undefined
  /** Verify the server's certificate (default `true`). */
  readonly rejectUnauthorized?: boolean | undefined
  /** The name the server's certificate must carry (SNI), when it is not the host connected to. */
  readonly servername?: string | undefined
}

/**
 * The options every adapter's `Options` has.
 *
 * @since 0.3.0
 */
export interface CommonOptions {
  /** Bound on establishing the first connection. Default 10 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** `true` for the platform's TLS defaults, or explicit settings. */
  readonly tls?: boolean | TlsOptions | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  /** Pacing of re-connections after a drop (each adapter documents its default). */
  readonly reconnectSchedule?: Schedule.Schedule<unknown, unknown> | undefined
}

/**
 * The default `connectTimeout`.
 *
 * @since 0.3.0
 */
export const defaultConnectTimeout: Duration.Duration = Duration.seconds(10)

/**
 * `connectTimeout` in milliseconds, with the default applied.
 *
 * @example
 * ```ts
 * import { ConnectionOptions } from "@switchyard/core/adapter"
 * ConnectionOptions.connectTimeoutMillis({ connectTimeout: "3 seconds" }) // 3000
 * ConnectionOptions.connectTimeoutMillis({}) // 10000
 * ```
 * @since 0.3.0
 */
export const connectTimeoutMillis = (options: CommonOptions): number =>
  Duration.toMillis(options.connectTimeout === undefined ? defaultConnectTimeout : Duration.fromInputUnsafe(options.connectTimeout))

/**
 * Node's `tls.connect` options from {@link TlsOptions} (secrets unwrapped only here), or `undefined` when TLS
 * is off.
 *
 * @example
 * ```ts
 * import { ConnectionOptions } from "@switchyard/core/adapter"
 * ConnectionOptions.nodeTls(true) // {}
 * ConnectionOptions.nodeTls(undefined) // undefined
 * ```
 * @since 0.3.0
 */
export const nodeTls = (tls: boolean | TlsOptions | undefined): NodeTlsOptions | undefined => {
  if (tls === undefined || tls === false) return undefined
  if (tls === true) return {}
  return {
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: Redacted.value(tls.key) } : {}),
    ...(tls.passphrase !== undefined ? { passphrase: Redacted.value(tls.passphrase) } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {})
  }
}

/**
 * The subset of Node's `tls.ConnectionOptions` that {@link nodeTls} fills.
 *
 * @since 0.3.0
 */
export interface NodeTlsOptions {
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  readonly passphrase?: string
  readonly rejectUnauthorized?: boolean
  readonly servername?: string
}

/**
 * The error of an option that cannot work (a malformed URL, a negative size): a `ConnectionError` of reason
 * `Invalid`, the same on every broker.
 *
 * @example
 * ```ts
 * import { ConnectionOptions } from "@switchyard/core/adapter"
 * ConnectionOptions.invalid("rabbitmq", "port must be between 1 and 65535, got 0").kind // "Invalid"
 * ```
 * @since 0.3.0
 */
export const invalid = (broker: string, message: string): ConnectionError =>
  new ConnectionError({ broker, reason: reason("Invalid", message) })

/**
 * Reads a `Config.Wrap<Options>` (what every `layerConfig` takes), failing with {@link invalid} for a missing
 * or malformed value.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { ConnectionOptions } from "@switchyard/core/adapter"
 * interface Options extends ConnectionOptions.CommonOptions { readonly url: string }
 * const options = ConnectionOptions.fromConfig<Options>("rabbitmq", { url: Config.String("AMQP_URL") })
 * ```
 * @since 0.3.0
 */
export const fromConfig = <Options>(broker: string, config: Config.Wrap<Options>): Effect.Effect<Options, ConnectionError> =>
  Effect.mapError(Config.unwrap(config), (error) => invalid(broker, `invalid configuration: ${error.message}`))

/**
 * The {@link CommonOptions} read from the environment under a prefix: `<PREFIX>_CONNECT_TIMEOUT`,
 * `<PREFIX>_USERNAME`, `<PREFIX>_PASSWORD` (redacted) and `<PREFIX>_TLS` (`true`/`false`). Adapters add their
 * own variables to it in their `config(prefix)`.
 *
 * @example
 * ```ts
 * import { ConnectionOptions } from "@switchyard/core/adapter"
 * const common = ConnectionOptions.commonConfig("AMQP")
 * ```
 * @since 0.3.0
 */
export const commonConfig = (prefix: string): Config.Config<CommonOptions> =>
  Config.all({
    connectTimeout: Config.option(Config.Duration(`${prefix}_CONNECT_TIMEOUT`)),
    username: Config.option(Config.String(`${prefix}_USERNAME`)),
    password: Config.option(Config.Redacted(`${prefix}_PASSWORD`)),
    tls: Config.option(Config.Boolean(`${prefix}_TLS`))
  }).pipe(
    Config.map((c) => ({
      ...(c.connectTimeout._tag === "Some" ? { connectTimeout: c.connectTimeout.value } : {}),
      ...(c.username._tag === "Some" ? { username: c.username.value } : {}),
      ...(c.password._tag === "Some" ? { password: c.password.value } : {}),
      ...(c.tls._tag === "Some" ? { tls: c.tls.value } : {})
    }))
  )
