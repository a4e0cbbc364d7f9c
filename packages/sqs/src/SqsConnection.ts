/**
 * The AWS SDK v3 `SQSClient` as a scoped service, plus the resolved options every other SQS module reads.
 * Options use the common vocabulary of every Switchyard adapter (`ConnectionOptions.CommonOptions`:
 * `connectTimeout`, `tls`, `username` / `password`, `reconnectSchedule`): `username` / `password` are the
 * access key id and secret access key (also `accessKeyId` / `secretAccessKey`); without them the SDK's default
 * credential chain is used (environment, profile, instance role). SQS speaks HTTP: there is no connection to
 * supervise; `reconnectSchedule` paces a subscription's receive loop after a failed poll.
 *
 * @since 0.1.0
 */
import * as Https from "node:https"
import { ListQueuesCommand, SQSClient, type SQSClientConfig } from "@aws-sdk/client-sqs"
import type { Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Schedule, type Scope } from "effect"
import { connectionError } from "./internal/errors.ts"

/**
 * A queue as data. Every field is optional; a queue not declared gets the connection's `defaultQueue`.
 * A destination whose name ends in `.fifo` is a FIFO queue.
 *
 * @example
 * ```ts
 * import type { SqsConnection } from "@switchyard/sqs"
 * const orders: SqsConnection.QueueSpec = { visibilityTimeout: "1 minute", maxReceiveCount: 5, retention: "4 days" }
 * ```
 * @since 0.1.0
 */
export interface QueueSpec {
  /** How long a received message stays invisible to others (SQS `VisibilityTimeout`, default 30 s, at most 12 h). */
  readonly visibilityTimeout?: Duration.Input | undefined
  /** How long SQS keeps a message (`MessageRetentionPeriod`, 60 s … 14 days, default 4 days). */
  readonly retention?: Duration.Input | undefined
  /** Delay of every new message (`DelaySeconds`, at most 15 minutes). */
  readonly delay?: Duration.Input | undefined
  /** Largest message the queue accepts, in bytes (`MaximumMessageSize`, 1,024 … 262,144). */
  readonly maximumMessageSize?: number | undefined
  /**
   * Redrive policy: after this many receives SQS moves a message to `deadLetterQueue`. Switchyard reads it as
   * the delivery limit: the consumer parks the message (with a reason) on its last receive, before SQS moves it.
   */
  readonly maxReceiveCount?: number | undefined
  /**
   * The destination SQS moves messages to after `maxReceiveCount` receives: default `<name>.dlq` (Switchyard's own
   * dead-letter destination), for a FIFO queue `<name without .fifo>-dlq.fifo` (SQS wants a FIFO one). A queue
   * URL names an existing queue (used as it is, never created).
   */
  readonly deadLetterQueue?: string | undefined
  /** FIFO only: deduplicate by a SHA-256 of the body instead of the message id. */
  readonly contentBasedDeduplication?: boolean | undefined
  /** Any other SQS queue attribute, verbatim (e.g. `KmsMasterKeyId`). */
  readonly attributes?: Readonly<Record<string, string>> | undefined
}

/**
 * Options of the SQS adapter. Everything is optional: with nothing set, the SDK's default region and
 * credential chain are used against AWS.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { SqsConnection } from "@switchyard/sqs"
 * const options: SqsConnection.Options = {
 *   region: "eu-west-1",
 *   endpoint: "http://127.0.0.1:9324",
 *   accessKeyId: "x",
 *   secretAccessKey: Redacted.make("x"),
 *   queues: { "orders.fifo": { visibilityTimeout: "1 minute", maxReceiveCount: 5 } }
 * }
 * ```
 * @since 0.1.0
 */
export interface Options extends ConnectionOptions.CommonOptions {
  /** AWS region (default: the SDK's, else `us-east-1`). */
  readonly region?: string | undefined
  /** Endpoint override (ElasticMQ, LocalStack, a VPC endpoint). */
  readonly endpoint?: string | undefined
  /** The access key id (same as `username`). */
  readonly accessKeyId?: string | undefined
  /** The secret access key (same as `password`). */
  readonly secretAccessKey?: Redacted.Redacted<string> | undefined
  /** A session token for temporary credentials. */
  readonly sessionToken?: Redacted.Redacted<string> | undefined
  /** Attempts per request, the SDK's own retries included (default 3). */
  readonly maxAttempts?: number | undefined
  /** Bound on one HTTP request, long polls excluded from nothing (default 30 s; must exceed `waitTime`). */
  readonly requestTimeout?: Duration.Input | undefined
  /** Long-poll wait of a receive (`WaitTimeSeconds`, default 10 s, at most 20 s). */
  readonly waitTime?: Duration.Input | undefined
  /** Parallel receive calls of one subscription (default: prefetch / 10, between 1 and 4). */
  readonly receivers?: number | undefined
  /**
   * Declared queues; they take precedence over `defaultQueue`. An entry for a queue URL is not applied (the
   * queue is not Switchyard's): it is checked against the queue's attributes, and a difference fails the
   * destination's first use with reason `TopologyConflict`.
   */
  readonly queues?: Readonly<Record<string, QueueSpec>> | undefined
  /** The attributes of a queue created on first use (default: SQS's defaults); never applied to a queue URL. */
  readonly defaultQueue?: QueueSpec | undefined
}

/**
 * Options with the defaults filled in.
 *
 * @since 0.1.0
 */
export interface Resolved {
  readonly options: Options
  readonly endpoint: string
  readonly waitTimeSeconds: number
  readonly receivers: number | undefined
  readonly requestTimeout: number
  readonly reconnectSchedule: Schedule.Schedule<unknown, unknown>
}

const seconds = (input: Duration.Input): number => Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(input)) / 1000)

/** After a failed poll: every 500 ms, for a minute (an endpoint restart fits in it). */
const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.spaced("500 millis").pipe(
  Schedule.upTo({ duration: "1 minute" })
)

/** SQS's bounds of a queue attribute, in seconds (`DelaySeconds`, `VisibilityTimeout`, `MessageRetentionPeriod`). */
const queueBounds = [
  ["delay", 0, 900],
  ["visibilityTimeout", 0, 43_200],
  ["retention", 60, 1_209_600]
] as const

/** What is wrong with a queue spec, before SQS refuses it at the first use (`undefined`: nothing). */
const queueProblem = (name: string, spec: QueueSpec): string | undefined => {
  for (const [field, min, max] of queueBounds) {
    const value = spec[field]
    if (value === undefined) continue
    const s = Duration.fromInput(value)
    if (s._tag === "None") return `queue ${name}: ${field} is not a duration`
    const n = Math.ceil(Duration.toMillis(s.value) / 1000)
    if (n < min || n > max) return `queue ${name}: ${field} must be between ${min} and ${max} seconds, got ${n}`
  }
  const receives = spec.maxReceiveCount
  if (receives !== undefined && (!Number.isInteger(receives) || receives < 1 || receives > 1000)) {
    return `queue ${name}: maxReceiveCount must be an integer from 1 to 1000, got ${receives}`
  }
  return undefined
}

/**
 * Fills in the defaults; bad values (a queue's delay over 15 minutes, a visibility timeout over 12 hours, …)
 * fail with `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqsConnection } from "@switchyard/sqs"
 * const resolved = SqsConnection.resolve({ endpoint: "http://127.0.0.1:9324" }) // waitTimeSeconds 10
 * ```
 * @since 0.1.0
 */
export const resolve = (options: Options): Effect.Effect<Resolved, Errors.ConnectionError> =>
  Effect.gen(function*() {
    const endpoint = options.endpoint ?? `sqs.${options.region ?? "default-region"}.amazonaws.com`
    const invalid = (message: string) => ConnectionOptions.invalid(endpoint, message)
    const waitTimeSeconds = yield* Effect.try({ try: () => seconds(options.waitTime ?? "10 seconds"), catch: () => invalid("waitTime is not a duration") })
    if (waitTimeSeconds < 0 || waitTimeSeconds > 20) return yield* invalid(`waitTime must be between 0 and 20 seconds, got ${waitTimeSeconds}`)
    const requestTimeout = yield* Effect.try({
      try: () => Duration.toMillis(Duration.fromInputUnsafe(options.requestTimeout ?? "30 seconds")),
      catch: () => invalid("requestTimeout is not a duration")
    })
    if (requestTimeout <= waitTimeSeconds * 1000) return yield* invalid("requestTimeout must be longer than waitTime")
    if (options.receivers !== undefined && (!Number.isInteger(options.receivers) || options.receivers < 1)) {
      return yield* invalid(`receivers must be a positive integer, got ${options.receivers}`)
    }
    if (options.endpoint !== undefined && !URL.canParse(options.endpoint)) return yield* invalid(`endpoint is not a URL: ${options.endpoint}`)
    const specs = [...Object.entries(options.queues ?? {}), ...(options.defaultQueue === undefined ? [] : [["(default)", options.defaultQueue] as const])]
    for (const [name, spec] of specs) {
      const problem = queueProblem(name, spec)
      if (problem !== undefined) return yield* invalid(problem)
    }
    return {
      options,
      endpoint,
      waitTimeSeconds,
      receivers: options.receivers,
      requestTimeout,
      reconnectSchedule: options.reconnectSchedule ?? defaultReconnectSchedule
    }
  })

/**
 * The SDK client configuration of these options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqsConnection } from "@switchyard/sqs"
 * const config = Effect.map(SqsConnection.resolve({ region: "eu-west-1" }), SqsConnection.clientConfig)
 * ```
 * @since 0.1.0
 */
export const clientConfig = (resolved: Resolved): SQSClientConfig => {
  const o = resolved.options
  const accessKeyId = o.accessKeyId ?? o.username
  const secret = o.secretAccessKey ?? o.password
  const tls = ConnectionOptions.nodeTls(o.tls)
  return {
    ...(o.region !== undefined ? { region: o.region } : {}),
    ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    ...(accessKeyId !== undefined
      ? {
        credentials: {
          accessKeyId,
          secretAccessKey: secret === undefined ? "" : Redacted.value(secret),
          ...(o.sessionToken !== undefined ? { sessionToken: Redacted.value(o.sessionToken) } : {})
        }
      }
      : {}),
    maxAttempts: o.maxAttempts ?? 3,
    requestHandler: {
      connectionTimeout: ConnectionOptions.connectTimeoutMillis(o),
      requestTimeout: resolved.requestTimeout,
      ...(tls !== undefined ? { httpsAgent: new Https.Agent({ ...tls, keepAlive: true }) } : {})
    }
  }
}

/**
 * The connection's shape: the SDK client and the options.
 *
 * @since 0.1.0
 */
export interface SqsConnectionShape {
  readonly client: SQSClient
  readonly resolved: Resolved
  /** The endpoint (for errors and logs). */
  readonly endpoint: string
}

/**
 * The SQS client service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqsConnection } from "@switchyard/sqs"
 * const endpoint = SqsConnection.SqsConnection.useSync((c) => c.endpoint)
 * ```
 * @since 0.1.0
 */
export class SqsConnection extends Context.Service<SqsConnection, SqsConnectionShape>()(
  "@switchyard/sqs/SqsConnection"
) {}

/**
 * Makes the client (destroyed when the scope closes) and checks the endpoint answers (`ListQueues`) within
 * `connectTimeout`. Bad options fail with `ConnectionError` reason `Invalid`; an endpoint that does not answer
 * or refuses the credentials with the classified reason.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqsConnection } from "@switchyard/sqs"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const connection = yield* SqsConnection.make({ endpoint: "http://127.0.0.1:9324", region: "elasticmq" })
 *   yield* Effect.log(connection.endpoint)
 * }))
 * ```
 * @since 0.1.0
 */
export const make: (options: Options) => Effect.Effect<SqsConnection["Service"], Errors.ConnectionError, Scope.Scope> = Effect.fn(
  "SqsConnection.make"
)(function*(options: Options) {
  const resolved = yield* resolve(options)
  const endpoint = resolved.endpoint
  const client = yield* Effect.acquireRelease(
    Effect.try({
      try: () => new SQSClient(clientConfig(resolved)),
      catch: (cause) => ConnectionOptions.invalid(endpoint, `invalid options: ${String(cause)}`)
    }),
    (c) => Effect.sync(() => c.destroy())
  )
  yield* Effect.tryPromise({
    try: (signal) => client.send(new ListQueuesCommand({ MaxResults: 1 }), { abortSignal: signal }),
    catch: (cause) => connectionError(endpoint, cause, "SQS did not answer ListQueues")
  }).pipe(
    Effect.timeoutOrElse({
      duration: ConnectionOptions.connectTimeoutMillis(options),
      orElse: () => Effect.fail(connectionError(endpoint, { name: "TimeoutError", message: "no answer within connectTimeout" }))
    })
  )
  return SqsConnection.of({ client, resolved, endpoint })
})

/**
 * The connection as a layer.
 *
 * @example
 * ```ts
 * import { SqsConnection } from "@switchyard/sqs"
 * const layer = SqsConnection.layer({ endpoint: "http://127.0.0.1:9324", region: "elasticmq" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<SqsConnection, Errors.ConnectionError> =>
  Layer.effect(SqsConnection, make(options))

/**
 * The connection layer from configuration (e.g. `config()`); bad configuration fails with `ConnectionError`
 * reason `Invalid`.
 *
 * @example
 * ```ts
 * import { SqsConnection } from "@switchyard/sqs"
 * const layer = SqsConnection.layerConfig(SqsConnection.config())
 * ```
 * @since 0.1.0
 */
export const layerConfig = (config: Config.Wrap<Options>): Layer.Layer<SqsConnection, Errors.ConnectionError> =>
  Layer.effect(SqsConnection, Effect.flatMap(ConnectionOptions.fromConfig("sqs", config), make))

const some = <A>(option: Option.Option<A>): A | undefined => Option.getOrUndefined(option)

/**
 * The options read from the environment (prefix `SQS` by default): `<P>_ENDPOINT`, `<P>_REGION` (or
 * `AWS_REGION`), `<P>_ACCESS_KEY_ID` / `<P>_SECRET_ACCESS_KEY` (redacted; or `<P>_USERNAME` / `<P>_PASSWORD`),
 * `<P>_SESSION_TOKEN` (redacted), `<P>_MAX_ATTEMPTS`, `<P>_RECEIVERS`, durations (`"10 seconds"`):
 * `<P>_WAIT_TIME`, `<P>_REQUEST_TIMEOUT`, `<P>_CONNECT_TIMEOUT`, `<P>_VISIBILITY_TIMEOUT` (of queues created on
 * first use), and `<P>_TLS`. Unset credentials fall back to the SDK's default chain.
 *
 * @example
 * ```ts
 * import { ConfigProvider } from "effect"
 * import { SqsConnection } from "@switchyard/sqs"
 * const options = SqsConnection.config().parse(ConfigProvider.fromEnvRecord({ SQS_ENDPOINT: "http://127.0.0.1:9324" }))
 * ```
 * @since 0.1.0
 */
export const config = (prefix = "SQS"): Config.Config<Options> =>
  Config.all({
    common: ConnectionOptions.commonConfig(prefix),
    endpoint: Config.option(Config.String(`${prefix}_ENDPOINT`)),
    region: Config.option(Config.String(`${prefix}_REGION`)),
    awsRegion: Config.option(Config.String("AWS_REGION")),
    accessKeyId: Config.option(Config.String(`${prefix}_ACCESS_KEY_ID`)),
    secretAccessKey: Config.option(Config.Redacted(`${prefix}_SECRET_ACCESS_KEY`)),
    sessionToken: Config.option(Config.Redacted(`${prefix}_SESSION_TOKEN`)),
    maxAttempts: Config.option(Config.Int(`${prefix}_MAX_ATTEMPTS`)),
    receivers: Config.option(Config.Int(`${prefix}_RECEIVERS`)),
    waitTime: Config.option(Config.Duration(`${prefix}_WAIT_TIME`)),
    requestTimeout: Config.option(Config.Duration(`${prefix}_REQUEST_TIMEOUT`)),
    visibilityTimeout: Config.option(Config.Duration(`${prefix}_VISIBILITY_TIMEOUT`))
  }).pipe(
    Config.map((c): Options => {
      const region = some(c.region) ?? some(c.awsRegion)
      const visibilityTimeout = some(c.visibilityTimeout)
      const fields: Options = {
        ...c.common,
        endpoint: some(c.endpoint),
        region,
        accessKeyId: some(c.accessKeyId),
        secretAccessKey: some(c.secretAccessKey),
        sessionToken: some(c.sessionToken),
        maxAttempts: some(c.maxAttempts),
        receivers: some(c.receivers),
        waitTime: some(c.waitTime),
        requestTimeout: some(c.requestTimeout),
        defaultQueue: visibilityTimeout === undefined ? undefined : { visibilityTimeout }
      }
      return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined))
    })
  )
