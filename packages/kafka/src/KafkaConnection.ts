/**
 * The kafkajs client as scoped services: one `Kafka` instance, one connected idempotent producer and one
 * connected admin client per layer, plus the resolved options every other Kafka module reads. Options use
 * the common vocabulary of every Switchyard adapter (`ConnectionOptions.CommonOptions`: `connectTimeout`,
 * `tls`, `username` / `password`, `reconnectSchedule`).
 *
 * @since 0.3.0
 */
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Schedule, type Scope } from "effect"
import type { Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import {
  type Admin,
  CompressionTypes,
  Kafka,
  type KafkaConfig,
  logLevel,
  Partitioners,
  type Producer,
  type SASLOptions
} from "kafkajs"
import { connectionError } from "./internal/errors.ts"

/**
 * A topic as data: declared topology wins over the defaults used for topics created on first use.
 *
 * @since 0.1.0
 */
export interface TopicSpec {
  readonly partitions?: number | undefined
  readonly replicationFactor?: number | undefined
  readonly configs?: Readonly<Record<string, string>> | undefined
}

/**
 * SASL mechanisms kafkajs speaks.
 *
 * @since 0.3.0
 */
export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512"

/**
 * Consumer group timings and behaviour.
 *
 * @since 0.1.0
 */
export interface ConsumerOptions {
  /** How long the coordinator waits for a heartbeat before it hands a member's partitions to others (default 30 s). */
  readonly sessionTimeout?: Duration.Input | undefined
  /** How often a member heartbeats (default 3 s; keep it well below `sessionTimeout`). */
  readonly heartbeatInterval?: Duration.Input | undefined
  /** How long the coordinator waits for every member to rejoin during a rebalance (default 60 s). */
  readonly rebalanceTimeout?: Duration.Input | undefined
  /**
   * How long a fetch waits for data (default 25 ms). kafkajs also sleeps this long when every assigned
   * partition is paused, so it bounds how fast a paused partition refills.
   */
  readonly maxWaitTime?: Duration.Input | undefined
  readonly maxBytesPerPartition?: number | undefined
  /** Commit the acknowledged prefix at least this often (default 100 ms). */
  readonly commitInterval?: Duration.Input | undefined
  /** …or as soon as this many acks are pending (default 1000). */
  readonly commitEvery?: number | undefined
  /** On shutdown, how long in-flight deliveries get to settle before the final commit (default 10 s). */
  readonly drainTimeout?: Duration.Input | undefined
}

/**
 * Options of the Kafka adapter. Only `brokers` is required. SASL is used when `username` is given
 * (`saslMechanism`, default `"plain"`); `tls: true` is TLS with the system CAs.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { KafkaConnection } from "@switchyard/kafka"
 * const options: KafkaConnection.Options = {
 *   brokers: ["127.0.0.1:9092"],
 *   clientId: "orders",
 *   username: "svc",
 *   password: Redacted.make("secret"),
 *   saslMechanism: "scram-sha-512",
 *   tls: true
 * }
 * ```
 * @since 0.3.0
 */
export interface Options extends ConnectionOptions.CommonOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId?: string | undefined
  readonly saslMechanism?: SaslMechanism | undefined
  readonly requestTimeout?: Duration.Input | undefined
  /** Client retry settings (kafkajs `retry`). */
  readonly retry?: {
    readonly retries?: number | undefined
    readonly initialRetryTime?: Duration.Input | undefined
    readonly maxRetryTime?: Duration.Input | undefined
  } | undefined
  /** Idempotent producer with acks=all (default true). */
  readonly idempotent?: boolean | undefined
  /** Producer compression (kafkajs ships gzip; default none). */
  readonly compression?: "none" | "gzip" | undefined
  /** Partitions of a topic created on first use (default 4). */
  readonly defaultPartitions?: number | undefined
  /** Replication factor of a topic created on first use (default: the broker's default). */
  readonly defaultReplicationFactor?: number | undefined
  /** Declared topics; they take precedence over the defaults. */
  readonly topics?: Readonly<Record<string, TopicSpec>> | undefined
  /** How long cached topic metadata is used before it is fetched again (default 5 minutes). */
  readonly metadataMaxAge?: Duration.Input | undefined
  readonly consumer?: ConsumerOptions | undefined
  /** kafkajs's own logging (default: nothing; errors surface as typed failures instead). */
  readonly logLevel?: "nothing" | "error" | "warn" | "info" | "debug" | undefined
}

/**
 * Options with every default filled in.
 *
 * @since 0.3.0
 */
export interface Resolved {
  readonly options: Options
  readonly defaultPartitions: number
  readonly defaultReplicationFactor: number
  readonly idempotent: boolean
  readonly compression: CompressionTypes
  readonly metadataMaxAge: number
  readonly sessionTimeout: number
  readonly heartbeatInterval: number
  readonly rebalanceTimeout: number
  readonly maxWaitTime: number
  readonly maxBytesPerPartition: number
  readonly commitInterval: Duration.Duration
  readonly commitEvery: number
  readonly drainTimeout: Duration.Duration
  /** How a crashed consumer is restarted (`reconnectSchedule`, default exponential from 500 ms, 10 times). */
  readonly reconnectSchedule: Schedule.Schedule<unknown, unknown>
}

const millis = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("500 millis").pipe(
  Schedule.upTo({ times: 10 })
)

/**
 * Fills in the defaults.
 *
 * @example
 * ```ts
 * import { KafkaConnection } from "@switchyard/kafka"
 * const resolved = KafkaConnection.resolve({ brokers: ["127.0.0.1:9092"] })
 * console.log(resolved.defaultPartitions) // 4
 * ```
 * @since 0.3.0
 */
export const resolve = (options: Options): Resolved => {
  const c = options.consumer ?? {}
  return {
    options,
    defaultPartitions: options.defaultPartitions ?? 4,
    defaultReplicationFactor: options.defaultReplicationFactor ?? -1,
    idempotent: options.idempotent ?? true,
    compression: options.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
    metadataMaxAge: millis(options.metadataMaxAge, 300_000),
    sessionTimeout: millis(c.sessionTimeout, 30_000),
    heartbeatInterval: millis(c.heartbeatInterval, 3_000),
    rebalanceTimeout: millis(c.rebalanceTimeout, 60_000),
    maxWaitTime: millis(c.maxWaitTime, 25),
    maxBytesPerPartition: c.maxBytesPerPartition ?? 1_048_576,
    commitInterval: Duration.fromInputUnsafe(c.commitInterval ?? "100 millis"),
    commitEvery: c.commitEvery ?? 1000,
    drainTimeout: Duration.fromInputUnsafe(c.drainTimeout ?? "10 seconds"),
    reconnectSchedule: options.reconnectSchedule ?? defaultReconnectSchedule
  }
}

const kafkaLogLevel = (level: Options["logLevel"]) => {
  switch (level) {
    case "error":
      return logLevel.ERROR
    case "warn":
      return logLevel.WARN
    case "info":
      return logLevel.INFO
    case "debug":
      return logLevel.DEBUG
    default:
      return logLevel.NOTHING
  }
}

const saslOptions = (options: Options): SASLOptions | undefined => {
  if (options.username === undefined) return undefined
  const username = options.username
  const password = options.password === undefined ? "" : Redacted.value(options.password)
  switch (options.saslMechanism ?? "plain") {
    case "plain":
      return { mechanism: "plain", username, password }
    case "scram-sha-256":
      return { mechanism: "scram-sha-256", username, password }
    case "scram-sha-512":
      return { mechanism: "scram-sha-512", username, password }
  }
}

const retryOptions = (retry: NonNullable<Options["retry"]>): NonNullable<KafkaConfig["retry"]> => ({
  ...(retry.retries !== undefined ? { retries: retry.retries } : {}),
  ...(retry.initialRetryTime !== undefined ? { initialRetryTime: millis(retry.initialRetryTime, 300) } : {}),
  ...(retry.maxRetryTime !== undefined ? { maxRetryTime: millis(retry.maxRetryTime, 30_000) } : {})
})

/**
 * The kafkajs client configuration of these options (not connected).
 *
 * @example
 * ```ts
 * import { KafkaConnection } from "@switchyard/kafka"
 * const config = KafkaConnection.kafkaConfig(KafkaConnection.resolve({ brokers: ["127.0.0.1:9092"], tls: true }))
 * console.log(config.ssl) // true
 * ```
 * @since 0.3.0
 */
export const kafkaConfig = (resolved: Resolved): KafkaConfig => {
  const o = resolved.options
  const sasl = saslOptions(o)
  const tls = o.tls === true ? true : ConnectionOptions.nodeTls(o.tls)
  return {
    clientId: o.clientId ?? "switchyard",
    brokers: [...o.brokers],
    logLevel: kafkaLogLevel(o.logLevel),
    connectionTimeout: ConnectionOptions.connectTimeoutMillis(o),
    requestTimeout: millis(o.requestTimeout, 30_000),
    ...(tls !== undefined ? { ssl: tls } : {}),
    ...(sasl !== undefined ? { sasl } : {}),
    ...(o.retry !== undefined ? { retry: retryOptions(o.retry) } : {})
  }
}

/**
 * The connection's shape: the kafkajs instance, its connected producer and admin client, and the options.
 *
 * @since 0.3.0
 */
export interface KafkaConnectionShape {
  readonly kafka: Kafka
  readonly producer: Producer
  readonly admin: Admin
  /** A fresh, unconnected producer with the same settings (to replace one whose idempotence state is unsure). */
  readonly newProducer: () => Producer
  readonly resolved: Resolved
  /** The bootstrap list as text (for errors). */
  readonly brokers: string
}

/**
 * The connected client.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaConnection } from "@switchyard/kafka"
 * const clientId = KafkaConnection.KafkaConnection.useSync((c) => c.resolved.options.clientId)
 * ```
 * @since 0.3.0
 */
export class KafkaConnection extends Context.Service<KafkaConnection, KafkaConnectionShape>()(
  "@switchyard/kafka/KafkaConnection"
) {}

const connected = <A extends { connect(): Promise<void>; disconnect(): Promise<void> }>(
  brokers: string,
  what: string,
  client: A
) =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => client.connect(), catch: (cause) => connectionError(brokers, cause, `${what} connect failed`) }),
    () => Effect.promise(() => client.disconnect().catch(() => undefined))
  ).pipe(Effect.as(client))

/**
 * Connects the client: a producer (idempotent, acks=all by default) and an admin client, both disconnected
 * when the scope closes. Bad options fail with `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaConnection } from "@switchyard/kafka"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const connection = yield* KafkaConnection.make({ brokers: ["127.0.0.1:9092"] })
 *   yield* Effect.log(connection.brokers)
 * }))
 * ```
 * @since 0.3.0
 */
export const make: (options: Options) => Effect.Effect<KafkaConnection["Service"], Errors.ConnectionError, Scope.Scope> = Effect.fn(
  "KafkaConnection.make"
)(function*(options: Options) {
  const brokers = options.brokers.join(",")
  const resolved = yield* Effect.try({
    try: () => resolve(options),
    catch: (cause) => ConnectionOptions.invalid(brokers, `invalid options: ${String(cause)}`)
  })
  if (options.brokers.length === 0) return yield* ConnectionOptions.invalid("kafka", "no brokers given")
  const kafka = yield* Effect.try({
    try: () => new Kafka(kafkaConfig(resolved)),
    catch: (cause) => ConnectionOptions.invalid(brokers, `invalid options: ${String(cause)}`)
  })
  const newProducer = () =>
    kafka.producer({
      idempotent: resolved.idempotent,
      maxInFlightRequests: resolved.idempotent ? 5 : 100,
      allowAutoTopicCreation: false,
      metadataMaxAge: resolved.metadataMaxAge,
      createPartitioner: Partitioners.DefaultPartitioner
    })
  // kafkajs checks producer options (e.g. idempotence without retries) when it makes the producer
  const first = yield* Effect.try({
    try: newProducer,
    catch: (cause) => ConnectionOptions.invalid(brokers, `invalid options: ${connectionError(brokers, cause).reason.message}`)
  })
  const producer = yield* connected(brokers, "producer", first)
  const admin = yield* connected(brokers, "admin", kafka.admin())
  return KafkaConnection.of({ kafka, producer, admin, newProducer, resolved, brokers })
})

/**
 * The connection as a layer.
 *
 * @example
 * ```ts
 * import { KafkaConnection } from "@switchyard/kafka"
 * const layer = KafkaConnection.layer({ brokers: ["127.0.0.1:9092"] })
 * ```
 * @since 0.3.0
 */
export const layer = (options: Options): Layer.Layer<KafkaConnection, Errors.ConnectionError> =>
  Layer.effect(KafkaConnection, make(options))

/**
 * The connection layer from configuration (e.g. `config()`); bad configuration fails with
 * `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { KafkaConnection } from "@switchyard/kafka"
 * const layer = KafkaConnection.layerConfig(KafkaConnection.config())
 * ```
 * @since 0.3.0
 */
export const layerConfig = (config: Config.Wrap<Options>): Layer.Layer<KafkaConnection, Errors.ConnectionError> =>
  Layer.effect(KafkaConnection, Effect.flatMap(ConnectionOptions.fromConfig("kafka", config), make))

const splitList = (s: string) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)

const some = <K extends string, A>(key: K, option: Option.Option<A>): { readonly [P in K]?: A } =>
  (Option.isSome(option) ? { [key]: option.value } : {}) as { readonly [P in K]?: A }

/**
 * The options read from the environment (prefix `KAFKA` by default): `<P>_BROKERS` (comma separated,
 * required), `<P>_CLIENT_ID`, `<P>_TLS` (or `<P>_SSL`), `<P>_USERNAME` / `<P>_PASSWORD` (or
 * `<P>_SASL_USERNAME` / `<P>_SASL_PASSWORD`; the password is `Redacted`), `<P>_SASL_MECHANISM`
 * (`plain` | `scram-sha-256` | `scram-sha-512`), `<P>_DEFAULT_PARTITIONS`, `<P>_RETRIES`, and durations
 * (`"30 seconds"`): `<P>_CONNECT_TIMEOUT`, `<P>_METADATA_MAX_AGE`, `<P>_SESSION_TIMEOUT`,
 * `<P>_HEARTBEAT_INTERVAL`, `<P>_REBALANCE_TIMEOUT`.
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect } from "effect"
 * import { KafkaConnection } from "@switchyard/kafka"
 * const options = KafkaConnection.config().parse(ConfigProvider.fromEnvRecord({ KAFKA_BROKERS: "127.0.0.1:9092" }))
 * ```
 * @since 0.3.0
 */
export const config = (prefix = "KAFKA"): Config.Config<Options> =>
  Config.all({
    common: ConnectionOptions.commonConfig(prefix),
    brokers: Config.String(`${prefix}_BROKERS`).pipe(Config.map(splitList)),
    clientId: Config.option(Config.String(`${prefix}_CLIENT_ID`)),
    ssl: Config.option(Config.Boolean(`${prefix}_SSL`)),
    saslMechanism: Config.option(Config.Literals(["plain", "scram-sha-256", "scram-sha-512"], `${prefix}_SASL_MECHANISM`)),
    saslUsername: Config.option(Config.String(`${prefix}_SASL_USERNAME`)),
    saslPassword: Config.option(Config.Redacted(`${prefix}_SASL_PASSWORD`)),
    defaultPartitions: Config.option(Config.Int(`${prefix}_DEFAULT_PARTITIONS`)),
    retries: Config.option(Config.Int(`${prefix}_RETRIES`)),
    metadataMaxAge: Config.option(Config.Duration(`${prefix}_METADATA_MAX_AGE`)),
    sessionTimeout: Config.option(Config.Duration(`${prefix}_SESSION_TIMEOUT`)),
    heartbeatInterval: Config.option(Config.Duration(`${prefix}_HEARTBEAT_INTERVAL`)),
    rebalanceTimeout: Config.option(Config.Duration(`${prefix}_REBALANCE_TIMEOUT`))
  }).pipe(
    Config.map((c): Options => {
      const consumer: ConsumerOptions = {
        ...some("sessionTimeout", c.sessionTimeout),
        ...some("heartbeatInterval", c.heartbeatInterval),
        ...some("rebalanceTimeout", c.rebalanceTimeout)
      }
      return {
        ...c.common,
        brokers: c.brokers,
        ...some("clientId", c.clientId),
        ...(c.common.tls === undefined ? some("tls", c.ssl) : {}),
        ...(c.common.username === undefined ? some("username", c.saslUsername) : {}),
        ...(c.common.password === undefined ? some("password", c.saslPassword) : {}),
        ...some("saslMechanism", c.saslMechanism),
        ...some("defaultPartitions", c.defaultPartitions),
        ...some("metadataMaxAge", c.metadataMaxAge),
        ...(Option.isSome(c.retries) ? { retry: { retries: c.retries.value } } : {}),
        ...(Object.keys(consumer).length > 0 ? { consumer } : {})
      }
    })
  )
