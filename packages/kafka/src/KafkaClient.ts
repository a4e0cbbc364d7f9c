/**
 * The kafkajs client as a service: one `Kafka` instance and one connected producer per layer, plus the
 * settings every other Kafka module reads.
 *
 * @since 0.1.0
 */
import type * as Tls from "node:tls"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { Errors } from "@switchyard/core"
import { CompressionTypes, Kafka, logLevel, Partitioners, type Producer, type SASLOptions } from "kafkajs"
import { connectionError } from "./internal/errors.ts"

/**
 * SASL authentication. The password is `Redacted` and never printed.
 *
 * @since 0.1.0
 */
export interface SaslSettings {
  readonly mechanism: "plain" | "scram-sha-256" | "scram-sha-512"
  readonly username: string
  readonly password: Redacted.Redacted<string>
}

/**
 * A topic as data: user-declared topology wins over the defaults used for topics created on first use.
 *
 * @since 0.1.0
 */
export interface TopicSpec {
  readonly partitions?: number | undefined
  readonly replicationFactor?: number | undefined
  readonly configs?: Readonly<Record<string, string>> | undefined
}

/**
 * Settings of the Kafka adapter. Only `brokers` is required.
 *
 * @example
 * ```ts
 * import { KafkaBroker } from "@switchyard/kafka"
 * const layer = KafkaBroker.layer({ brokers: ["127.0.0.1:9092"], clientId: "orders" })
 * ```
 * @since 0.1.0
 */
export interface KafkaSettings {
  readonly brokers: ReadonlyArray<string>
  readonly clientId?: string | undefined
  /** `true` for TLS with the system CAs, or Node TLS options. */
  readonly ssl?: boolean | Tls.ConnectionOptions | undefined
  readonly sasl?: SaslSettings | undefined
  readonly connectionTimeout?: Duration.Input | undefined
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
  /**
   * How long cached topic metadata (partition counts, leaders) is used before it is fetched again, like the
   * Java client's `metadata.max.age.ms` (default 5 minutes); it is also refreshed after a failed send. A
   * publisher notices partitions added to a topic within this time.
   */
  readonly metadataMaxAge?: Duration.Input | undefined
  /** Consumer group timings and behaviour. */
  readonly consumer?: ConsumerSettings | undefined
  /** kafkajs's own logging (default: nothing; errors surface as typed failures instead). */
  readonly logLevel?: "nothing" | "error" | "warn" | "info" | "debug" | undefined
}

/**
 * Consumer settings.
 *
 * @since 0.1.0
 */
export interface ConsumerSettings {
  /**
   * How long the group coordinator waits for a member's heartbeat before it declares the member dead and
   * hands its partitions to the others (default 30 s). After a crash or SIGKILL the survivors take over after
   * this long; within the broker's `group.min/max.session.timeout.ms`.
   */
  readonly sessionTimeout?: Duration.Input | undefined
  /** How often a member heartbeats (default 3 s; keep it well below `sessionTimeout`). */
  readonly heartbeatInterval?: Duration.Input | undefined
  /** How long the coordinator waits for every member to rejoin during a rebalance (default 60 s). */
  readonly rebalanceTimeout?: Duration.Input | undefined
  /**
   * How long a fetch waits for data (default 25 ms). kafkajs also sleeps this long when every assigned
   * partition is paused, so it bounds how fast a paused partition refills: keep it short for throughput,
   * raise it to cut idle polling (an idle member sends about 1000 / maxWaitTime fetches per second).
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
 * Settings with every default filled in.
 *
 * @since 0.1.0
 */
export interface ResolvedSettings {
  readonly settings: KafkaSettings
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
}

const millis = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Fills in the defaults.
 *
 * @example
 * ```ts
 * import { KafkaClient } from "@switchyard/kafka"
 * const resolved = KafkaClient.resolve({ brokers: ["127.0.0.1:9092"] })
 * ```
 * @since 0.1.0
 */
export const resolve = (settings: KafkaSettings): ResolvedSettings => {
  const c = settings.consumer ?? {}
  return {
    settings,
    defaultPartitions: settings.defaultPartitions ?? 4,
    defaultReplicationFactor: settings.defaultReplicationFactor ?? -1,
    idempotent: settings.idempotent ?? true,
    compression: settings.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
    metadataMaxAge: millis(settings.metadataMaxAge, 300_000),
    sessionTimeout: millis(c.sessionTimeout, 30_000),
    heartbeatInterval: millis(c.heartbeatInterval, 3_000),
    rebalanceTimeout: millis(c.rebalanceTimeout, 60_000),
    maxWaitTime: millis(c.maxWaitTime, 25),
    maxBytesPerPartition: c.maxBytesPerPartition ?? 1_048_576,
    commitInterval: Duration.fromInputUnsafe(c.commitInterval ?? "100 millis"),
    commitEvery: c.commitEvery ?? 1000,
    drainTimeout: Duration.fromInputUnsafe(c.drainTimeout ?? "10 seconds")
  }
}

const kafkaLogLevel = (level: KafkaSettings["logLevel"]) => {
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

const saslOptions = (sasl: SaslSettings): SASLOptions => {
  const password = Redacted.value(sasl.password)
  switch (sasl.mechanism) {
    case "plain":
      return { mechanism: "plain", username: sasl.username, password }
    case "scram-sha-256":
      return { mechanism: "scram-sha-256", username: sasl.username, password }
    case "scram-sha-512":
      return { mechanism: "scram-sha-512", username: sasl.username, password }
  }
}

/**
 * Builds the raw kafkajs client (not connected).
 *
 * @example
 * ```ts
 * import { KafkaClient } from "@switchyard/kafka"
 * const kafka = KafkaClient.makeKafka(KafkaClient.resolve({ brokers: ["127.0.0.1:9092"] }))
 * ```
 * @since 0.1.0
 */
export const makeKafka = (resolved: ResolvedSettings): Kafka => {
  const s = resolved.settings
  const retry = s.retry
  return new Kafka({
    clientId: s.clientId ?? "switchyard",
    brokers: [...s.brokers],
    logLevel: kafkaLogLevel(s.logLevel),
    connectionTimeout: millis(s.connectionTimeout, 3_000),
    requestTimeout: millis(s.requestTimeout, 30_000),
    ...(s.ssl !== undefined ? { ssl: s.ssl } : {}),
    ...(s.sasl !== undefined ? { sasl: saslOptions(s.sasl) } : {}),
    ...(retry !== undefined
      ? {
        retry: {
          ...(retry.retries !== undefined ? { retries: retry.retries } : {}),
          ...(retry.initialRetryTime !== undefined ? { initialRetryTime: millis(retry.initialRetryTime, 300) } : {}),
          ...(retry.maxRetryTime !== undefined ? { maxRetryTime: millis(retry.maxRetryTime, 30_000) } : {})
        }
      }
      : {})
  })
}

/**
 * The connected client: the kafkajs instance, its producer and the resolved settings.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaClient } from "@switchyard/kafka"
 * const clientId = KafkaClient.KafkaClient.useSync((c) => c.settings.settings.clientId)
 * ```
 * @since 0.1.0
 */
export class KafkaClient extends Context.Service<KafkaClient, {
  readonly kafka: Kafka
  readonly producer: Producer
  /** A fresh, unconnected producer with the same settings (to replace one whose idempotence state is unsure). */
  readonly newProducer: () => Producer
  readonly settings: ResolvedSettings
}>()("@switchyard/kafka/KafkaClient") {}

/**
 * Connects a kafkajs client and an idempotent (acks=all) producer; both are disconnected when the layer's
 * scope closes.
 *
 * @example
 * ```ts
 * import { KafkaClient } from "@switchyard/kafka"
 * const layer = KafkaClient.layer({ brokers: ["127.0.0.1:9092"] })
 * ```
 * @since 0.1.0
 */
export const layer = (settings: KafkaSettings): Layer.Layer<KafkaClient, Errors.ConnectionError> =>
  Layer.effect(
    KafkaClient,
    Effect.gen(function*() {
      const { kafka, newProducer, producer, resolved } = yield* Effect.try({
        try: () => {
          const resolved = resolve(settings)
          const kafka = makeKafka(resolved)
          const newProducer = () =>
            kafka.producer({
              idempotent: resolved.idempotent,
              maxInFlightRequests: resolved.idempotent ? 5 : 100,
              allowAutoTopicCreation: false,
              metadataMaxAge: resolved.metadataMaxAge,
              createPartitioner: Partitioners.DefaultPartitioner
            })
          return { kafka, newProducer, producer: newProducer(), resolved }
        },
        catch: (cause) =>
          new Errors.ConnectionError({
            broker: settings.brokers.join(","),
            reason: `invalid settings: ${String(cause)}`,
            kind: "Invalid",
            cause
          })
      })
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => producer.connect(),
          catch: (cause) => connectionError(settings.brokers.join(","), cause, "producer connect failed")
        }),
        () => Effect.promise(() => producer.disconnect().catch(() => undefined))
      )
      return KafkaClient.of({ kafka, producer, newProducer, settings: resolved })
    })
  )
