/**
 * The consumer runtime: runs a handler over a topic until interrupted, with the guarantees users rely on.
 *
 * - Schema decode before the handler; an undecodable message goes to the dead-letter destination with the
 *   reason in headers, then is acknowledged (policy configurable).
 * - Retries by a user `Schedule`, with a predicate telling retryable from fatal errors; exhausted or fatal
 *   errors and handler defects are dead-lettered with reason, error tag, attempt count and origin.
 * - Bounded concurrency with ordering `"none"`, `"key"` (sequential per key, parallel across keys) or
 *   `"partition"` (sequential per broker lane).
 * - A per-message handler timeout.
 * - Ack only after the handler finished: at-least-once.
 * - Graceful shutdown on interruption: stop taking new messages, let in-flight handlers finish within the
 *   drain timeout, settle them, then close the subscription.
 * - Optional idempotency (skip ids already processed).
 *
 * Every delivery ends in an {@link Outcome}. The runtime is composed of small stages (`internal/consumer/`:
 * decode, delivery limit, idempotency, redrive, timeout, retry, dead letter, tracing, lanes, drain), each a
 * function from the next step to a step, built once per consumer from the options resolved once.
 *
 * @since 0.1.0
 */
import type { Duration, Schedule } from "effect"
import { Cause, Effect, Exit, Fiber, Layer, pipe } from "effect"
import * as Scope from "effect/Scope"
import { Broker } from "./Broker.ts"
import type { Envelope, OutgoingMessage } from "./Envelope.ts"
import type { DecodeError, HandlerTimeoutError, SubscribeError } from "./Errors.ts"
import type * as IdempotencyOptions from "./Idempotency.ts"
import * as DeadLetterStage from "./internal/consumer/deadLetter.ts"
import * as Decode from "./internal/consumer/decode.ts"
import * as DeliveryLimit from "./internal/consumer/deliveryLimit.ts"
import * as Drain from "./internal/consumer/drain.ts"
import * as HandlerStep from "./internal/consumer/handler.ts"
import * as Idempotency from "./internal/consumer/idempotency.ts"
import * as Lanes from "./internal/consumer/lanes.ts"
import * as ConsumerOptions from "./internal/consumer/options.ts"
import * as Outcomes from "./internal/consumer/outcome.ts"
import * as Redrive from "./internal/consumer/redrive.ts"
import * as Retry from "./internal/consumer/retry.ts"
import * as Subscription from "./internal/consumer/subscription.ts"
import * as Tracing from "./internal/consumer/tracing.ts"
import * as DeadLetter from "./internal/deadLetter.ts"
import type * as Subscriber from "./Subscriber.ts"
import * as Telemetry from "./Telemetry.ts"
import type { Topic } from "./Topic.ts"

/**
 * A message handler: a pure effect of the decoded value and its envelope.
 *
 * @category models
 * @since 0.1.0
 */
export type Handler<A, E, R> = (value: A, envelope: Envelope) => Effect.Effect<unknown, E, R>

/**
 * Ordering guarantee of a consumer.
 *
 * @category models
 * @since 0.1.0
 */
export type Ordering = "none" | "key" | "partition"

/**
 * How failed handler runs are retried (`Options.retry`).
 *
 * @example
 * ```ts
 * import { Schedule } from "effect"
 * import type { Consumer } from "@switchyard/core"
 * class Declined { readonly _tag = "Declined" }
 * const retry: Consumer.RetryOptions<Declined | Error> = {
 *   schedule: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 5 })),
 *   isRetryable: (error) => !(error instanceof Declined)
 * }
 * ```
 * @category models
 * @since 0.3.0
 */
export interface RetryOptions<E> {
  /** The retry policy; its input is the error (default: no retries). */
  readonly schedule?: Schedule.Schedule<unknown, E | HandlerTimeoutError> | undefined
  /**
   * Tells retryable from fatal errors (default {@link defaultIsRetryable}: every typed error is retryable
   * except one whose `isRetryable` is `false`, such as a broker error of a fatal reason). Defects are never
   * retried.
   */
  readonly isRetryable?: ((error: E | HandlerTimeoutError) => boolean) | undefined
}

/**
 * Where dead letters go (`Options.deadLetter`).
 *
 * @example
 * ```ts
 * import type { Consumer } from "@switchyard/core"
 * const deadLetter: Consumer.DeadLetterOptions = { destination: "orders.parked", retryDelay: "5 seconds" }
 * ```
 * @category models
 * @since 0.3.0
 */
export interface DeadLetterOptions {
  /** The dead-letter destination (default `"<topic>.dlq"`). */
  readonly destination?: string | undefined
  /**
   * When a dead letter cannot be published for a reason that may pass (broker unreachable, timeout: a
   * retryable `PublishError`), the delivery is nacked with this delay and comes back later (default 1 second).
   * A dead letter the broker refuses for good is first retried in reduced forms (see {@link deadLetterMessage}).
   */
  readonly retryDelay?: Duration.Input | undefined
}

/**
 * What to do with payloads that cannot be handled as they are (`Options.decode`).
 *
 * @example
 * ```ts
 * import type { Consumer } from "@switchyard/core"
 * const decode: Consumer.DecodeOptions = { onFailure: "dead-letter", onUnknownType: "ignore" }
 * ```
 * @category models
 * @since 0.3.0
 */
export interface DecodeOptions {
  /** A payload the codec rejects (default `"dead-letter"`; `"skip"` acks it; `"fail"` fails the consumer). */
  readonly onFailure?: "dead-letter" | "skip" | "fail" | undefined
  /** A well-formed payload of an event type no handler knows (see `Router`; default `"dead-letter"`). */
  readonly onUnknownType?: "dead-letter" | "ignore" | undefined
}

/**
 * Options of a consumer, one field per concern. Only `group` is usually set; everything else has a safe default.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<E> {
  /** Consumer group (default `"default"`). Members of a group share the work. */
  readonly group?: string | undefined
  /** Handlers running at once (default 1). */
  readonly concurrency?: number | undefined
  /** Ordering under concurrency (default `"key"`). */
  readonly ordering?: Ordering | undefined
  /**
   * Deliveries held unacknowledged (default: `max(16, 4 × concurrency)`; on at-most-once brokers such as
   * core NATS at least `Broker.atMostOncePrefetch`, since nothing paces their sender).
   */
  readonly prefetch?: number | undefined
  /** Where a new group starts (default `"earliest"`). */
  readonly startFrom?: Subscriber.Options["startFrom"]
  /**
   * Retries of a failed handler run (default: none): a `Schedule` over the error, or {@link RetryOptions} to
   * also tell retryable from fatal errors.
   */
  readonly retry?: Schedule.Schedule<unknown, E | HandlerTimeoutError> | RetryOptions<E> | undefined
  /** Fail a handler run that takes longer than this (a retryable `HandlerTimeoutError`). */
  readonly handlerTimeout?: Duration.Input | undefined
  /** On shutdown, how long in-flight handlers may take to finish (default 30 seconds). */
  readonly drainTimeout?: Duration.Input | undefined
  /**
   * Where what cannot be handled goes (default `"<topic>.dlq"`): a destination, {@link DeadLetterOptions}, or
   * `false` to nack instead (the broker redelivers).
   */
  readonly deadLetter?: string | false | DeadLetterOptions | undefined
  /** What to do with payloads the codec rejects or whose event type no handler knows (see {@link DecodeOptions}). */
  readonly decode?: DecodeOptions | undefined
  /**
   * Skip messages whose id this group already finished (handled or dead-lettered), so one id ends in one
   * outcome per group. Only stable ids count (`IncomingEnvelope.hasStableId`): a message without an id of its
   * own or from broker coordinates is never taken for a duplicate.
   */
  readonly idempotency?: IdempotencyOptions.Options | boolean | undefined
  /**
   * Restart the subscription when it fails with a retryable `SubscribeError` (`isRetryable`), per this
   * schedule; handlers in flight are unaffected and unsettled messages come back from the broker. A
   * non-retryable one (authorization, missing destination) fails the consumer. Default: the consumer fails.
   */
  readonly restart?: Schedule.Schedule<unknown, SubscribeError | DecodeError> | undefined
  /** Continue the publisher's trace as the parent (default) or link to it. */
  readonly traceContext?: "parent" | "link" | undefined
}

/**
 * How a delivery ended, a tagged union: `Handled`, `Duplicate` (idempotency), `DeadLettered` (with the
 * destination, the form sent and the failure), `Nacked` (dead-lettering off, or the dead letter could not be
 * published: `error`), `Skipped` (undecodable, `decode: { onFailure: "skip" }`) and `Ignored` (an unknown event
 * type, or a redriven copy meant for another group). Spans carry its {@link outcomeLabel} as
 * `switchyard.outcome`.
 *
 * @example
 * ```ts
 * import { Consumer } from "@switchyard/core"
 * const describe = (outcome: Consumer.Outcome): string =>
 *   Consumer.Outcome.$match(outcome, {
 *     Handled: () => "done",
 *     Duplicate: () => "seen before",
 *     DeadLettered: ({ destination, failure }) => `parked in ${destination}: ${failure.reason}`,
 *     Nacked: ({ error }) => error === undefined ? "given back" : `not parked: ${error.message}`,
 *     Skipped: ({ error }) => `skipped: ${error.message}`,
 *     Ignored: ({ reason }) => reason
 *   })
 * ```
 * @category models
 * @since 0.3.0
 */
export type Outcome = Outcomes.Outcome

/**
 * Constructors, `$is` and `$match` of {@link Outcome}.
 *
 * @example
 * ```ts
 * import { Consumer } from "@switchyard/core"
 * const isParked = Consumer.Outcome.$is("DeadLettered")
 * isParked(Consumer.Outcome.Handled()) // false
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const Outcome = Outcomes.Outcome

/**
 * The label of an outcome, as the `switchyard.outcome` span attribute shows it: `"handled"`, `"duplicate"`,
 * `"dead-lettered"`, `"nacked"`, `"skipped"` or `"ignored"`.
 *
 * @example
 * ```ts
 * import { Consumer } from "@switchyard/core"
 * Consumer.outcomeLabel(Consumer.Outcome.Handled()) // "handled"
 * ```
 * @category utils
 * @since 0.3.0
 */
export const outcomeLabel: (outcome: Outcome) => Outcomes.Label = Outcomes.label

/**
 * Why a delivery was dead-lettered: a readable reason, the error's tag, and the attempts made.
 *
 * @category models
 * @since 0.2.0
 */
export type Failure = DeadLetter.Failure

/**
 * The forms of a dead letter, tried in this order while the broker refuses one with a non-retryable
 * `PublishError` (too large, invalid): `"full"`, `"headers-omitted"`, `"payload-omitted"` (see
 * {@link deadLetterMessage}).
 *
 * @category models
 * @since 0.2.0
 */
export type DeadLetterForm = DeadLetter.Form

/**
 * The default `RetryOptions.isRetryable`: every typed error is retryable, except one that says it is not
 * (an `isRetryable` property that is `false`, as on a `PublishError` of reason `Unroutable` or `TooLarge`),
 * so that a handler whose publish can never succeed is dead-lettered at once instead of re-run.
 *
 * @example
 * ```ts
 * import { Consumer, Errors } from "@switchyard/core"
 * Consumer.defaultIsRetryable(new Errors.PublishError({ destination: "audit", reason: Errors.reason("Unroutable", "NO_ROUTE") })) // false
 * Consumer.defaultIsRetryable(new Errors.PublishError({ destination: "audit", reason: Errors.reason("Timeout", "timed out") })) // true
 * ```
 * @category utils
 * @since 0.2.0
 */
export const defaultIsRetryable: (error: unknown) => boolean = Retry.defaultIsRetryable

/**
 * Builds the message sent to a dead-letter destination. Its id is derived from the original id and the group
 * (`<id>.dlq.<group>`, hashed when too long for a broker's id field), so that brokers that deduplicate by id
 * (JetStream) keep one dead letter per group, and a redelivered message dead-lettered twice by one group stays
 * one dead letter there. Everything the dead-letter headers add is one line of text, bounded (the reason to
 * 1,024 characters, then a marker saying how much was cut).
 *
 * - `"full"` (default): the original payload, key and headers (except the envelope headers its own fields
 *   carry and a producer's `x-switchyard-dlq-*` headers) plus the dead-letter headers.
 * - `"headers-omitted"`: only the dead-letter headers, the reason cut to 256 characters, and
 *   `x-switchyard-dlq-headers-omitted` with the number of original headers left out.
 * - `"payload-omitted"`: as above with an empty payload, `x-switchyard-dlq-payload-omitted: "true"` and
 *   `x-switchyard-dlq-payload-bytes`; the origin headers say where the original still sits.
 *
 * @example
 * ```ts
 * import { Clock, Effect } from "effect"
 * import { Consumer, Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * const deadLetter = Effect.map(Clock.currentTimeMillis, (now) =>
 *   Consumer.deadLetterMessage(envelope, "billing", { reason: "card declined", errorTag: "PaymentFailed", attempts: 3 }, now)
 * ) // an OutgoingMessage for "<topic>.dlq" with the x-switchyard-dlq-* headers
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const deadLetterMessage = (
  envelope: Envelope,
  group: string,
  failure: Failure,
  now: number,
  form: DeadLetterForm = "full"
): OutgoingMessage => DeadLetter.message(envelope, group, failure, now, form)

/**
 * Runs a handler over a topic until interrupted (or until the subscription ends). Interruption is a
 * graceful shutdown: no new deliveries are taken, in-flight handlers get `drainTimeout` to finish and are
 * settled, then the subscription closes.
 *
 * Each delivery goes through the stages of `internal/consumer/`, composed once here: tracing → redrive →
 * idempotency → delivery limit → decode → handler (timeout, retry) → ack, or the dead-letter stage.
 *
 * @example
 * ```ts
 * import { Effect, Schedule, Schema } from "effect"
 * import { Consumer, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String, total: Schema.Number }), { key: (o) => o.id })
 * const program = Consumer.run(orders, (order) => Effect.log(`order ${order.id}`), {
 *   group: "billing",
 *   concurrency: 8,
 *   ordering: "key",
 *   retry: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 3 }))
 * })
 * ```
 * @category running
 * @since 0.1.0
 */
export const run: <A, E, R>(
  topic: Topic<A>,
  handler: Handler<A, E, R>,
  options?: Options<E>
) => Effect.Effect<void, SubscribeError | DecodeError, R | Broker> =
  // Untraced: a span around `run` would stay open for the consumer's whole life and become the parent of
  // every `process` span that has no upstream trace.
  Effect.fnUntraced(function*<A, E, R>(topic: Topic<A>, handler: Handler<A, E, R>, options: Options<E> = {}) {
    const broker = yield* Broker
    const config = ConsumerOptions.resolve(topic.name, options, broker)
    const { group } = config.subscription
    const ledger = yield* Idempotency.ledger(config.idempotency, topic.name, group)
    const remember = Idempotency.remember(ledger)
    const park = DeadLetterStage.make<A>(config.deadLetter, { broker, group, remember })
    const handle = HandlerStep.make(handler, config.retry, { destination: topic.name, park, remember, remembers: ledger !== undefined })
    const metrics = yield* Telemetry.PerMessageMetrics
    const step = pipe(
      Decode.decode(config.decode, park)(handle),
      DeliveryLimit.deliveryLimit(park),
      Idempotency.idempotency(ledger),
      Redrive.redrive(group),
      Tracing.traced({
        enabled: yield* Telemetry.tracing,
        metrics,
        broker,
        destination: topic.name,
        group,
        traceContext: config.tracing.context
      })
    )
    const drain = yield* Drain.make<A>()
    const process = Lanes.processAll(config.lanes, drain.begin(step), metrics)
    const subscriptionScope = yield* Scope.make()
    const fiber = yield* Effect.forkIn(Subscription.supervised(config, { broker, topic, drain, process }), subscriptionScope)
    return yield* Fiber.join(fiber).pipe(
      Effect.onInterrupt(() => Drain.drain(drain, fiber, config.drain.timeout, `consumer "${group}" on ${topic.name}`)),
      Effect.ensuring(Scope.close(subscriptionScope, Exit.void))
    )
  })

/**
 * A consumer as a Layer: it runs in the background for as long as the layer is alive and drains
 * gracefully when the layer is released. Compose consumer layers and `Layer.launch` them.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { Consumer, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const EmailConsumer = Consumer.layer(orders, (o) => Effect.log(`email for ${o.id}`), { group: "email" })
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <A, E, R>(
  topic: Topic<A>,
  handler: Handler<A, E, R>,
  options: Options<E> = {}
): Layer.Layer<never, never, R | Broker> =>
  Layer.effectDiscard(
    Effect.forkScoped(
      run(topic, handler, options).pipe(
        Effect.tapCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError(`consumer on ${topic.name} stopped`, cause)
        )
      )
    )
  )

/**
 * Runs a consumer in the current scope, in the background; closing the scope drains it gracefully.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Consumer, Switchyard, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const program = Effect.scoped(Effect.gen(function*() {
 *   yield* Consumer.start(orders, (o) => Effect.log(`order ${o.id}`), { group: "billing" })
 *   yield* Effect.sleep("1 minute") // the consumer runs meanwhile; closing the scope drains it
 * })).pipe(Effect.provide(Switchyard.layerMemory()))
 * ```
 * @category running
 * @since 0.1.0
 */
export const start = <A, E, R>(
  topic: Topic<A>,
  handler: Handler<A, E, R>,
  options: Options<E> = {}
): Effect.Effect<Fiber.Fiber<void, SubscribeError | DecodeError>, never, R | Broker | Scope.Scope> =>
  Effect.forkScoped(run(topic, handler, options))
