/**
 * SQS queues as data, declared on first use through the kit's `Provisioner`: a destination's queue is looked
 * up (`GetQueueUrl`) or created (`CreateQueue`) once, with its declared `QueueSpec` (or the connection's
 * `defaultQueue`), and its attributes read back (visibility timeout, redrive policy), however many fibers ask at
 * once. A declared queue that exists with other attributes fails with reason `TopologyConflict`. A destination
 * that is a queue URL (`https://sqs.eu-west-1.amazonaws.com/123456789012/orders`) is that existing queue, used as
 * it is: never created nor escaped, read with `GetQueueAttributes` (a missing one fails with reason `NotFound`, a
 * malformed URL with `Invalid`), a spec declared for it checked, not applied; `<queue URL>.dlq` is its redrive
 * target. Plus the admin operations: attributes and counts, purge, delete.
 *
 * @since 0.1.0
 */
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  PurgeQueueCommand,
  type QueueAttributeName
} from "@aws-sdk/client-sqs"
import { Errors } from "@switchyard/core"
import { Provisioner } from "@switchyard/core/adapter"
import { Context, Duration, Effect, Layer, Option, Result, Schema } from "effect"
import { kindOf, reasonOf } from "./internal/errors.ts"
import { invalidQueueName, isFifo, queueNameOf } from "./internal/names.ts"
import * as QueueUrl from "./internal/queueUrl.ts"
import { SqsConnection, type QueueSpec } from "./SqsConnection.ts"

export type { QueueSpec } from "./SqsConnection.ts"

/**
 * A declaration or admin operation failed.
 *
 * @example
 * ```ts
 * import { SqsTopology } from "@switchyard/sqs"
 * declare const error: SqsTopology.SqsTopologyError
 * const kind = error.reason._tag // "TopologyConflict", "NotFound", …
 * ```
 * @since 0.1.0
 */
export class SqsTopologyError extends Schema.TaggedError<SqsTopologyError>()("SqsTopologyError", {
  destination: Schema.String,
  reason: Errors.Reason
}) {
  override get message(): string {
    return `SQS queue of ${this.destination}: ${this.reason.message}`
  }
}

/**
 * What the adapter knows of a destination's queue.
 *
 * @since 0.1.0
 */
export interface QueueInfo {
  readonly destination: string
  readonly queueName: string
  readonly url: string
  readonly fifo: boolean
  /** The queue's `VisibilityTimeout`, in seconds. */
  readonly visibilityTimeoutSeconds: number
  /** The redrive policy's `maxReceiveCount`, when the queue has one. */
  readonly maxReceiveCount: number | undefined
  /** The redrive policy's target (an ARN), when the queue has one. */
  readonly deadLetterTargetArn?: string | undefined
}

/**
 * Approximate message counts of a queue.
 *
 * @since 0.1.0
 */
export interface QueueCounts {
  readonly visible: number
  readonly inFlight: number
  readonly delayed: number
}

/**
 * The topology service.
 *
 * @since 0.1.0
 */
export interface SqsTopologyShape {
  /** The queue of a destination (a name or a queue URL), declared on first use. */
  readonly queue: (destination: string) => Effect.Effect<QueueInfo, SqsTopologyError>
  /** Approximate counts of a destination's queue. */
  readonly counts: (destination: string) => Effect.Effect<QueueCounts, SqsTopologyError>
  /** Deletes every message of a destination's queue (SQS allows one purge per queue per minute). */
  readonly purge: (destination: string) => Effect.Effect<void, SqsTopologyError>
  /** Deletes a destination's queue. */
  readonly delete: (destination: string) => Effect.Effect<void, SqsTopologyError>
  /** Forgets a destination's declaration (its queue was found missing): the next use declares it again. */
  readonly forget: (destination: string) => Effect.Effect<void>
}

/**
 * The topology service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqsTopology } from "@switchyard/sqs"
 * const info = SqsTopology.SqsTopology.use((t) => t.queue("orders"))
 * ```
 * @since 0.1.0
 */
export class SqsTopology extends Context.Service<SqsTopology, SqsTopologyShape>()("@switchyard/sqs/SqsTopology") {}

const secondsText = (input: Duration.Input): string =>
  String(Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(input)) / 1000))

/**
 * The destination SQS redrives a queue's messages to (`deadLetterQueue`, else `<name>.dlq`, for FIFO
 * `<name without .fifo>-dlq.fifo`), for a queue the adapter creates. A queue given by its URL is never created:
 * its own redrive policy says where its messages go (`QueueInfo.deadLetterTargetArn`).
 *
 * @example
 * ```ts
 * import { SqsTopology } from "@switchyard/sqs"
 * SqsTopology.redriveTargetOf("orders", { maxReceiveCount: 5 }) // "orders.dlq"
 * ```
 * @since 0.1.0
 */
export const redriveTargetOf = (destination: string, spec: QueueSpec): string =>
  spec.deadLetterQueue ?? (isFifo(destination) ? `${destination.slice(0, -".fifo".length)}-dlq.fifo` : `${destination}.dlq`)

/**
 * The SQS queue name of a destination: a destination that is a valid queue name (`[A-Za-z0-9_-]`, optional
 * `.fifo`) is that queue; any other is escaped: letters, digits and `-` stay, `.` becomes `_d`, `_` becomes
 * `_u`, any other character `_x` and its UTF-8 bytes in hex; a trailing `.fifo` stays (it makes the queue
 * FIFO). A queue URL (`https://…/<account>/<name>`) is that queue, never escaped: its name is the last path
 * segment. A destination with a scheme that names no queue without asking SQS (`<queue URL>.dlq`, the queue's
 * redrive target) or at all (a malformed URL, which the topology refuses as `Invalid`) comes back as given.
 * For tools that reach the adapter's queues with the raw SDK.
 *
 * @example
 * ```ts
 * import { SqsTopology } from "@switchyard/sqs"
 * SqsTopology.queueName("order_events") // "order_events"
 * SqsTopology.queueName("orders.dlq") // "orders_ddlq"
 * SqsTopology.queueName("orders.fifo") // "orders.fifo"
 * SqsTopology.queueName("https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo") // "orders.fifo"
 * ```
 * @since 0.1.0
 */
export const queueName = (destination: string): string => QueueUrl.queueNameOfDestination(destination)

/**
 * The SQS attributes of a queue spec (the redrive policy aside: it needs the target's ARN).
 *
 * @example
 * ```ts
 * import { SqsTopology } from "@switchyard/sqs"
 * SqsTopology.attributesOf("orders.fifo", { visibilityTimeout: "1 minute" }) // { FifoQueue: "true", VisibilityTimeout: "60" }
 * ```
 * @since 0.1.0
 */
export const attributesOf = (destination: string, spec: QueueSpec): Record<string, string> => ({
  ...(isFifo(destination) ? { FifoQueue: "true" } : {}),
  ...(spec.visibilityTimeout !== undefined ? { VisibilityTimeout: secondsText(spec.visibilityTimeout) } : {}),
  ...(spec.retention !== undefined ? { MessageRetentionPeriod: secondsText(spec.retention) } : {}),
  ...(spec.delay !== undefined ? { DelaySeconds: secondsText(spec.delay) } : {}),
  ...(spec.maximumMessageSize !== undefined ? { MaximumMessageSize: String(spec.maximumMessageSize) } : {}),
  ...(spec.contentBasedDeduplication !== undefined && isFifo(destination)
    ? { ContentBasedDeduplication: String(spec.contentBasedDeduplication) }
    : {}),
  ...spec.attributes
})

const RedrivePolicy = Schema.fromJsonString(Schema.Struct({
  maxReceiveCount: Schema.Union([Schema.Number, Schema.NumberFromString]),
  deadLetterTargetArn: Schema.optionalKey(Schema.String)
}))
const decodeRedrivePolicy = Schema.decodeUnknownOption(RedrivePolicy)

const numberOf = (text: string | undefined, fallback: number): number => {
  const n = text === undefined ? Number.NaN : Number(text)
  return Number.isFinite(n) ? n : fallback
}

/** The attributes {@link QueueInfo} is made of. */
const infoAttributes: Array<QueueAttributeName> = ["VisibilityTimeout", "RedrivePolicy", "FifoQueue"]

/** A queue's info from its attributes (`fifo`: the name says so; SQS's `FifoQueue` says so too). */
const infoOf = (destination: string, queueName: string, url: string, fifo: boolean, a: Readonly<Record<string, string>>): QueueInfo => {
  const redrive = a["RedrivePolicy"] === undefined ? Option.none() : decodeRedrivePolicy(a["RedrivePolicy"])
  return {
    destination,
    queueName,
    url,
    fifo: a["FifoQueue"] === "true" || fifo,
    visibilityTimeoutSeconds: numberOf(a["VisibilityTimeout"], 30),
    maxReceiveCount: Option.isSome(redrive) ? redrive.value.maxReceiveCount : undefined,
    deadLetterTargetArn: Option.isSome(redrive) ? redrive.value.deadLetterTargetArn : undefined
  }
}

/** How an existing queue's redrive policy differs from a declared spec's (`maxReceiveCount`, `deadLetterQueue`). */
const redriveMismatches = (spec: QueueSpec, info: QueueInfo): ReadonlyArray<QueueUrl.Mismatch> => {
  if (spec.maxReceiveCount === undefined) return []
  const receives = info.maxReceiveCount === spec.maxReceiveCount
    ? []
    : [{ attribute: "RedrivePolicy.maxReceiveCount", declared: String(spec.maxReceiveCount), actual: info.maxReceiveCount?.toString() }]
  if (spec.deadLetterQueue === undefined) return receives
  const wanted = QueueUrl.queueNameOfDestination(spec.deadLetterQueue)
  const actual = info.deadLetterTargetArn === undefined ? undefined : QueueUrl.queueNameOfArn(info.deadLetterTargetArn)
  return actual === wanted ? receives : [...receives, { attribute: "RedrivePolicy.deadLetterTargetArn", declared: wanted, actual: info.deadLetterTargetArn }]
}

/**
 * Builds the topology service on a connection.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { SqsTopology } from "@switchyard/sqs"
 * const topologyLayer = Layer.effect(SqsTopology.SqsTopology, SqsTopology.make)
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<SqsTopologyShape, never, SqsConnection> = Effect.gen(function*() {
  const { client, resolved } = yield* SqsConnection
  const declared = resolved.options.queues ?? {}
  const known = new Map<string, QueueInfo>()

  const fail = (destination: string, error: unknown, context: string) =>
    new SqsTopologyError({ destination, reason: reasonOf(error, context) })
  const call = <A>(destination: string, context: string, send: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({ try: send, catch: (error) => fail(destination, error, context) })

  const urlOf = (destination: string, queueName: string, spec: QueueSpec, explicit: boolean, redrive: Record<string, string>) => {
    const create = call(destination, "CreateQueue", (signal) =>
      client.send(
        new CreateQueueCommand({ QueueName: queueName, Attributes: { ...attributesOf(destination, spec), ...redrive } }),
        { abortSignal: signal }
      )).pipe(Effect.map((r) => r.QueueUrl ?? ""))
    if (explicit) return create
    // an undeclared queue that exists is used as it is
    return call(destination, "GetQueueUrl", (signal) => client.send(new GetQueueUrlCommand({ QueueName: queueName }), { abortSignal: signal }))
      .pipe(
        Effect.map((r) => r.QueueUrl ?? ""),
        Effect.catchIf((e) => e.reason._tag === "NotFound", () => create)
      )
  }

  const getAttributes = (destination: string, url: string, names: Array<QueueAttributeName>) =>
    call(destination, "GetQueueAttributes", (signal) =>
      client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }), { abortSignal: signal }))
      .pipe(Effect.map((r): Readonly<Record<string, string>> => r.Attributes ?? {}))

  const readInfo = (destination: string, queueName: string, url: string) =>
    getAttributes(destination, url, infoAttributes).pipe(Effect.map((a) => infoOf(destination, queueName, url, isFifo(destination), a)))

  const arnOf = (destination: string, url: string) =>
    getAttributes(destination, url, ["QueueArn"]).pipe(Effect.map((a) => a["QueueArn"] ?? ""))

  const invalid = (destination: string, message: string) =>
    new SqsTopologyError({ destination, reason: Errors.reason("Invalid", message) })

  const declareName = (destination: string): Effect.Effect<void, SqsTopologyError> =>
    Effect.gen(function*() {
      const queueName = queueNameOf(destination)
      const problem = invalidQueueName(queueName)
      if (problem !== undefined) return yield* invalid(destination, problem)
      const own = declared[destination]
      const spec = own ?? resolved.options.defaultQueue ?? {}
      const redrive = spec.maxReceiveCount === undefined ? {} : yield* Effect.gen(function*() {
        const target = yield* ensureInfo(redriveTargetOf(destination, spec))
        const arn = yield* arnOf(destination, target.url)
        return { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: spec.maxReceiveCount }) }
      })
      const url = yield* urlOf(destination, queueName, spec, own !== undefined, redrive)
      known.set(destination, yield* readInfo(destination, queueName, url))
    })

  /** `<queue URL>.dlq`: the queue's own redrive target, a queue of the same account and endpoint. */
  const redriveTargetUrl = Effect.fn("SqsTopology.redriveTargetUrl")(function*(destination: string, source: QueueUrl.QueueUrl) {
    const { deadLetterTargetArn } = yield* ensureInfo(source.url)
    if (deadLetterTargetArn === undefined) {
      return yield* invalid(
        destination,
        `${source.url} has no redrive policy, so it has no dead-letter queue to default to; ` +
          "give the consumer's deadLetter (or DeadLetters' destination) the URL of a dead-letter queue"
      )
    }
    const name = QueueUrl.queueNameOfArn(deadLetterTargetArn)
    if (name === undefined) return yield* invalid(destination, `the redrive target of ${source.url} is not an SQS queue ARN: ${deadLetterTargetArn}`)
    return QueueUrl.siblingUrl(source, name)
  })

  /** Checks a spec declared for a URL against the queue: the queue is not ours to change. */
  const checkDeclared = (destination: string, spec: QueueSpec, actual: Readonly<Record<string, string>>, info: QueueInfo) => {
    const found = [...QueueUrl.mismatches(attributesOf(destination, spec), actual), ...redriveMismatches(spec, info)]
    return found.length === 0
      ? Effect.void
      : Effect.fail(new SqsTopologyError({
        destination,
        reason: Errors.reason(
          "TopologyConflict",
          `the queue at this URL is not Switchyard's to change, and it differs from its declared spec: ${QueueUrl.describeMismatches(found)}`
        )
      }))
  }

  const declareUrl = Effect.fn("SqsTopology.declareUrl")(function*(destination: string) {
    const target = QueueUrl.parse(destination)
    if (Result.isFailure(target)) return yield* invalid(destination, target.failure)
    const queue = target.success._tag === "Queue" ? target.success.queue : yield* redriveTargetUrl(destination, target.success.source)
    const otherRegion = QueueUrl.regionProblem(queue, resolved.options.region)
    if (otherRegion !== undefined) return yield* invalid(destination, otherRegion)
    const own = declared[destination]
    // a missing queue fails here (NotFound): a URL's queue is never created
    const attributes = yield* getAttributes(destination, queue.url, own === undefined ? infoAttributes : ["All"])
    const info = infoOf(destination, queue.queueName, queue.url, queue.fifo, attributes)
    if (own !== undefined) yield* checkDeclared(destination, own, attributes, info)
    known.set(destination, info)
  })

  const declare = (destination: string): Effect.Effect<void, SqsTopologyError> =>
    QueueUrl.isUrl(destination) ? declareUrl(destination) : declareName(destination)

  const provisioner = yield* Provisioner.make({ declare })
  const ensureInfo = (destination: string): Effect.Effect<QueueInfo, SqsTopologyError> =>
    Effect.flatMap(provisioner.ensure(destination), () => {
      const info = known.get(destination)
      return info === undefined
        ? Effect.fail(new SqsTopologyError({ destination, reason: Errors.reason("NotFound", "queue not declared") }))
        : Effect.succeed(info)
    })

  const queue = ensureInfo
  const forget = (destination: string) =>
    Effect.andThen(provisioner.invalidate(destination), Effect.sync(() => known.delete(destination)))

  const counts = (destination: string) =>
    Effect.flatMap(queue(destination), (info) =>
      call(destination, "GetQueueAttributes", (signal) =>
        client.send(
          new GetQueueAttributesCommand({
            QueueUrl: info.url,
            AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
          }),
          { abortSignal: signal }
        )).pipe(Effect.map((r): QueueCounts => ({
          visible: numberOf(r.Attributes?.ApproximateNumberOfMessages, 0),
          inFlight: numberOf(r.Attributes?.ApproximateNumberOfMessagesNotVisible, 0),
          delayed: numberOf(r.Attributes?.ApproximateNumberOfMessagesDelayed, 0)
        }))))

  const purge = (destination: string) =>
    Effect.flatMap(queue(destination), (info) =>
      call(destination, "PurgeQueue", (signal) => client.send(new PurgeQueueCommand({ QueueUrl: info.url }), { abortSignal: signal })))
      .pipe(Effect.asVoid)

  const remove = (destination: string) =>
    Effect.flatMap(queue(destination), (info) =>
      call(destination, "DeleteQueue", (signal) => client.send(new DeleteQueueCommand({ QueueUrl: info.url }), { abortSignal: signal })))
      .pipe(Effect.andThen(forget(destination)), Effect.asVoid)

  return { queue, counts, purge, delete: remove, forget }
})

/**
 * Whether a failure means the queue is gone (deleted by someone else): callers forget it and declare it again.
 *
 * @example
 * ```ts
 * import { SqsTopology } from "@switchyard/sqs"
 * SqsTopology.isMissingQueue({ name: "QueueDoesNotExist" }) // true
 * ```
 * @since 0.1.0
 */
export const isMissingQueue = (error: unknown): boolean => kindOf(error) === "NotFound"

/**
 * The topology layer (needs `SqsConnection`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { SqsConnection, SqsTopology } from "@switchyard/sqs"
 * const layer = SqsTopology.layer.pipe(Layer.provide(SqsConnection.layer({ endpoint: "http://127.0.0.1:9324" })))
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<SqsTopology, never, SqsConnection> = Layer.effect(SqsTopology, make)
