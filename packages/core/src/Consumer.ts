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
 * @since 0.1.0
 */
import type { Schedule, Scope, Tracer } from "effect"
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Predicate,
  References,
  Result,
  Stream
} from "effect"
import * as Scope_ from "effect/Scope"
import * as IncomingEnvelope from "./adapter/IncomingEnvelope.ts"
import { Broker, defaultPrefetch } from "./Broker.ts"
import type { Envelope, OutgoingMessage } from "./Envelope.ts"
import { describe as describeEnvelope } from "./Envelope.ts"
import { type DecodeError, HandlerTimeoutError, type PublishError, type SubscribeError } from "./Errors.ts"
import * as H from "./Headers.ts"
import * as Idempotency from "./Idempotency.ts"
import * as DeadLetter from "./internal/deadLetter.ts"
import { keyHash } from "./internal/hash.ts"
import { Pending } from "./internal/pending.ts"
import type { Delivery } from "./Subscriber.ts"
import * as Subscriber from "./Subscriber.ts"
import * as Telemetry from "./Telemetry.ts"
import type { Topic } from "./Topic.ts"

/**
 * A message handler: a pure effect of the decoded value and its envelope.
 *
 * @since 0.1.0
 */
export type Handler<A, E, R> = (value: A, envelope: Envelope) => Effect.Effect<unknown, E, R>

/**
 * Ordering guarantee of a consumer.
 *
 * @since 0.1.0
 */
export type Ordering = "none" | "key" | "partition"

/**
 * Options of a consumer. Only `group` is usually set; everything else has a safe default.
 *
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
  /** Retry policy for failed handlers; its input is the error (default: no retries). */
  readonly retry?: Schedule.Schedule<unknown, E | HandlerTimeoutError> | undefined
  /**
   * Tells retryable from fatal errors (default {@link defaultIsRetryable}: every typed error is retryable
   * except one whose `isRetryable` is `false`, such as a broker error of a fatal kind). Defects are never
   * retried.
   */
  readonly isRetryable?: ((error: E | HandlerTimeoutError) => boolean) | undefined
  /** Fail a handler run that takes longer than this (a retryable `HandlerTimeoutError`). */
  readonly handlerTimeout?: Duration.Input | undefined
  /** On shutdown, how long in-flight handlers may take to finish (default 30 seconds). */
  readonly drainTimeout?: Duration.Input | undefined
  /** Dead-letter destination (default `"<topic>.dlq"`); `false` nacks instead (the broker redelivers). */
  readonly deadLetter?: string | false | undefined
  /**
   * When a dead letter cannot be published for a reason that may pass (broker unreachable, timeout: a
   * retryable `PublishError`), the delivery is nacked with this delay and comes back later (default 1 second).
   * A dead letter the broker refuses for good is first retried in reduced forms (see {@link deadLetterMessage}).
   */
  readonly deadLetterRetryDelay?: Duration.Input | undefined
  /** What to do with a payload that cannot be decoded (default `"dead-letter"`). */
  readonly onDecodeFailure?: "dead-letter" | "skip" | "fail" | undefined
  /** What to do with a well-formed payload of an unknown event type (see `Router`; default `"dead-letter"`). */
  readonly onUnknownType?: "dead-letter" | "ignore" | undefined
  /**
   * Skip messages whose id this group already finished (handled or dead-lettered), so one id ends in one
   * outcome per group. Only stable ids count (`IncomingEnvelope.hasStableId`): a message without an id of its
   * own or from broker coordinates is never taken for a duplicate.
   */
  readonly idempotency?: Idempotency.Options | boolean | undefined
  /**
   * Restart the subscription when it fails with a retryable `SubscribeError` (`isRetryable`), per this
   * schedule; handlers in flight are unaffected and unsettled messages come back from the broker. A
   * non-retryable one (authorization, missing destination) fails the consumer. Default: the consumer fails.
   */
  readonly restart?: Schedule.Schedule<unknown, SubscribeError | DecodeError> | undefined
  /** Continue the publisher's trace as the parent (default) or link to it. */
  readonly traceContext?: "parent" | "link" | undefined
}

/** How a delivery ended, for tests and logs. @since 0.1.0 */
export type Outcome = "handled" | "duplicate" | "dead-lettered" | "skipped" | "ignored" | "nacked"

/**
 * Why a delivery was dead-lettered: a readable reason, the error's tag, and the attempts made.
 *
 * @since 0.2.0
 */
export type Failure = DeadLetter.Failure

/**
 * The forms of a dead letter, tried in this order while the broker refuses one with a non-retryable
 * `PublishError` (too large, invalid): `"full"`, `"headers-omitted"`, `"payload-omitted"` (see
 * {@link deadLetterMessage}).
 *
 * @since 0.2.0
 */
export type DeadLetterForm = DeadLetter.Form

/**
 * The default `Options.isRetryable`: every typed error is retryable, except one that says it is not
 * (an `isRetryable` property that is `false`, as on a `PublishError` of kind `"Unroutable"` or `"TooLarge"`),
 * so that a handler whose publish can never succeed is dead-lettered at once instead of re-run.
 *
 * @example
 * ```ts
 * import { Consumer, Errors } from "@switchyard/core"
 * Consumer.defaultIsRetryable(new Errors.PublishError({ destination: "audit", reason: "NO_ROUTE", kind: "Unroutable" })) // false
 * Consumer.defaultIsRetryable(new Errors.PublishError({ destination: "audit", reason: "timed out", kind: "Timeout" })) // true
 * ```
 * @since 0.2.0
 */
export const defaultIsRetryable = (error: unknown): boolean =>
  !(Predicate.hasProperty(error, "isRetryable") && error.isRetryable === false)

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
 * import { Consumer, Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * const deadLetter = Consumer.deadLetterMessage(
 *   envelope,
 *   "billing",
 *   { reason: "card declined", errorTag: "PaymentFailed", attempts: 3 },
 *   Date.now()
 * ) // an OutgoingMessage for "<topic>.dlq" with the x-switchyard-dlq-* headers
 * ```
 * @since 0.1.0
 */
export const deadLetterMessage = (
  envelope: Envelope,
  group: string,
  failure: Failure,
  now: number,
  form: DeadLetterForm = "full"
): OutgoingMessage => DeadLetter.message(envelope, group, failure, now, form)

const [firstForm, ...fallbackForms] = DeadLetter.forms

/**
 * The dead letter of a redriven copy that failed again: without the redrive-group header (a consumer of the
 * dead-letter destination must not take it for a copy meant for another group), and with a broker-level
 * dedup id of its own, so that a broker deduplicating by id (JetStream) does not swallow it as the earlier
 * dead letter of the same message by the same group. Stable per redrive (`x-switchyard-redriven-at`), so a
 * redelivered copy dead-lettered twice still leaves one.
 */
const parkedAgain = (envelope: Envelope, message: OutgoingMessage): OutgoingMessage => {
  const redrivenAt = envelope.headers[H.redrivenAt]
  if (envelope.headers[H.redriveGroup] === undefined && redrivenAt === undefined) return message
  const { [H.redriveGroup]: _redriveGroup, ...headers } = message.headers
  return { ...message, headers, dedupId: `${message.id}.redriven.${redrivenAt ?? "?"}` }
}

/**
 * The ledger key of one redrive of a message (a redriven copy, by its `x-switchyard-redriven-at`), or
 * `undefined` for a delivery that is not a redriven copy.
 */
const redriveKey = (envelope: Envelope): string | undefined =>
  envelope.headers[H.redriveGroup] === undefined
    ? undefined
    : `${envelope.id}#redriven-at:${envelope.headers[H.redrivenAt] ?? ""}`

/** Only a subscription failure that may pass (connection lost, timeout) is worth a restart. */
const restartable = (error: SubscribeError | DecodeError): boolean => error._tag === "SubscribeError" && error.isRetryable

/**
 * Runs a handler over a topic until interrupted (or until the subscription ends). Interruption is a
 * graceful shutdown: no new deliveries are taken, in-flight handlers get `drainTimeout` to finish and are
 * settled, then the subscription closes.
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
 * @since 0.1.0
 */
export const run = <A, E, R>(
  topic: Topic<A>,
  handler: Handler<A, E, R>,
  options: Options<E> = {}
): Effect.Effect<void, SubscribeError | DecodeError, R | Broker> =>
  Effect.gen(function*() {
    const broker = yield* Broker
    const group = options.group ?? "default"
    const concurrency = Math.max(1, options.concurrency ?? 1)
    const ordering = options.ordering ?? "key"
    const prefetch = options.prefetch ?? defaultPrefetch(broker.capabilities, Math.max(16, concurrency * 4))
    const drainTimeout = options.drainTimeout ?? Duration.seconds(30)
    const deadLetterDestination = options.deadLetter === undefined ? `${topic.name}.dlq` : options.deadLetter
    const isRetryable = options.isRetryable ?? defaultIsRetryable
    const deadLetterRetryDelay = Duration.fromInputUnsafe(options.deadLetterRetryDelay ?? Duration.seconds(1))
    const handlerTimeout = options.handlerTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.handlerTimeout)
    const ledger = options.idempotency === undefined || options.idempotency === false
      ? undefined
      : yield* Idempotency.ledger(options.idempotency === true ? {} : options.idempotency, topic.name, group)
    const groupAttribute = { "messaging.consumer.group.name": group }
    const attributes = Telemetry.messagingAttributes(broker.system, topic.name, "process", groupAttribute)

    const stop = yield* Deferred.make<void>()

    const settle = (delivery: Delivery<A>, settlement: Effect.Effect<void, unknown>) =>
      settlement.pipe(
        Effect.catch((error) =>
          Effect.logWarning(`could not settle ${describeEnvelope(delivery.envelope)}; the broker will redeliver it`, error)
        )
      )

    // Only stable ids go to the ledger: an id made up per delivery (or an empty one) names no message.
    const { hasStableId } = IncomingEnvelope

    /** Records the id as done for the group (handled or parked), so a duplicate or redelivery ends the same way. */
    const remember = (delivery: Delivery<A>): Effect.Effect<void> => {
      if (ledger === undefined || !hasStableId(delivery.envelope)) return Effect.void
      // A redriven copy for this group is also recorded under its redrive, so a redelivery of it is a duplicate.
      const redrive = redriveKey(delivery.envelope)
      return redrive === undefined
        ? ledger.remember(delivery.envelope.id)
        : Effect.andThen(ledger.remember(delivery.envelope.id), ledger.remember(redrive))
    }

    /** Publishes the dead letter in `form`; a refusal for good (`!isRetryable`) falls back to the next form. */
    const publishDeadLetter = (
      destination: string,
      delivery: Delivery<A>,
      failure: Failure,
      now: number,
      form: DeadLetterForm,
      fallbacks: ReadonlyArray<DeadLetterForm>
    ): Effect.Effect<DeadLetterForm, PublishError> =>
      broker.publish(destination, [parkedAgain(delivery.envelope, deadLetterMessage(delivery.envelope, group, failure, now, form))]).pipe(
        Effect.as(form),
        Effect.catch((error) => {
          const [next, ...rest] = fallbacks
          return error.isRetryable || next === undefined
            ? Effect.fail(error)
            : Effect.andThen(
              Effect.logWarning(
                `${destination} refused the ${form} dead letter of ${describeEnvelope(delivery.envelope)} (${error.reason}); ` +
                  `sending it in the ${next} form`
              ),
              publishDeadLetter(destination, delivery, failure, now, next, rest)
            )
        })
      )

    const parked = (delivery: Delivery<A>, destination: string, failure: Failure, form: DeadLetterForm) =>
      Effect.logWarning(
        `dead-lettered ${describeEnvelope(delivery.envelope)} to ${destination}${form === "full" ? "" : ` (${form})`}: ` +
          `${failure.errorTag}: ${DeadLetter.headerValue(failure.reason, DeadLetter.maxReasonLength)}`
      ).pipe(
        Effect.andThen(Metric.update(Telemetry.deadLettered, 1)),
        Effect.andThen(remember(delivery)),
        Effect.andThen(settle(delivery, delivery.ack)),
        Effect.as("dead-lettered" as const)
      )

    // Never ack what could not be parked: the broker redelivers it after the delay.
    const notParked = (delivery: Delivery<A>, error: PublishError) =>
      Effect.logError(
        `dead-lettering ${describeEnvelope(delivery.envelope)} failed${error.isRetryable ? "" : " in every form"}; nacking`,
        error
      ).pipe(
        Effect.andThen(settle(delivery, delivery.nack({ delay: deadLetterRetryDelay }))),
        Effect.as("nacked" as const)
      )

    const deadLetter = (delivery: Delivery<A>, failure: Failure): Effect.Effect<Outcome> => {
      if (deadLetterDestination === false) {
        return Effect.as(settle(delivery, delivery.nack()), "nacked" as const)
      }
      const destination = deadLetterDestination
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.matchEffect(publishDeadLetter(destination, delivery, failure, now, firstForm, fallbackForms), {
          onFailure: (error) => notParked(delivery, error),
          onSuccess: (form) => parked(delivery, destination, failure, form)
        }))
    }

    const handled = (delivery: Delivery<A>): Effect.Effect<Outcome> => {
      const done = Effect.as(settle(delivery, delivery.ack), "handled" as const)
      return ledger !== undefined && hasStableId(delivery.envelope) ? Effect.andThen(remember(delivery), done) : done
    }

    const settleRun = (delivery: Delivery<A>, exit: Exit.Exit<unknown, E | HandlerTimeoutError>, attempts: number) =>
      Exit.isFailure(exit) ? failed(delivery, exit.cause, attempts) : handled(delivery)

    // No retry policy and no timeout: one run, no bookkeeping. `suspend` turns a handler that throws instead
    // of returning an effect into a defect like any other (dead-lettered), not a crash of the consumer.
    const runOnce = (delivery: Delivery<A>, value: A): Effect.Effect<Outcome, never, R> =>
      Effect.flatMap(
        Effect.exit(Effect.suspend(() => handler(value, delivery.envelope))),
        (exit) => settleRun(delivery, exit, 1)
      )

    const runWithPolicy = (delivery: Delivery<A>, value: A): Effect.Effect<Outcome, never, R> => {
      // Counted by this delivery's own fiber only, across its retries.
      const attempts = { count: 0 }
      const once = Effect.suspend(() => {
        attempts.count++
        return handler(value, delivery.envelope)
      })
      const timed: Effect.Effect<unknown, E | HandlerTimeoutError, R> = handlerTimeout === undefined
        ? once
        : Effect.timeoutOrElse(once, {
          duration: handlerTimeout,
          orElse: () =>
            Effect.fail(new HandlerTimeoutError({ destination: topic.name, timeoutMillis: Duration.toMillis(handlerTimeout) }))
        })
      const retried = options.retry === undefined
        ? timed
        : Effect.retry(timed, {
          schedule: options.retry,
          while: (error: E | HandlerTimeoutError) => isRetryable(error)
        })
      return Effect.flatMap(Effect.exit(retried), (exit) =>
        Effect.andThen(
          attempts.count > 1 ? Metric.update(Telemetry.retried, attempts.count - 1) : Effect.void,
          settleRun(delivery, exit, attempts.count)
        ))
    }

    const runHandler = handlerTimeout === undefined && options.retry === undefined ? runOnce : runWithPolicy

    const undecodable = (delivery: Delivery<A>, failure: DecodeError): Effect.Effect<Outcome, DecodeError> => {
      if (delivery.unknownType !== undefined) {
        return options.onUnknownType === "ignore"
          ? Effect.as(settle(delivery, delivery.ack), "ignored" as const)
          : deadLetter(delivery, { reason: failure.message, errorTag: "UnknownEventType", attempts: delivery.envelope.attempt })
      }
      switch (options.onDecodeFailure ?? "dead-letter") {
        case "skip":
          return Effect.logWarning(`skipping undecodable ${describeEnvelope(delivery.envelope)}: ${failure.message}`).pipe(
            Effect.andThen(settle(delivery, delivery.ack)),
            Effect.as("skipped" as const)
          )
        case "fail":
          return Effect.fail(failure)
        case "dead-letter":
          return deadLetter(delivery, { reason: failure.message, errorTag: failure._tag, attempts: delivery.envelope.attempt })
      }
    }

    const failed = (delivery: Delivery<A>, cause: Cause.Cause<E | HandlerTimeoutError>, attempts: number) => {
      if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
      const error = Cause.findErrorOption(cause)
      const total = delivery.envelope.attempt - 1 + attempts
      return deadLetter(
        delivery,
        Option.isSome(error)
          ? { reason: DeadLetter.reasonOf(error.value), errorTag: DeadLetter.errorTagOf(error.value), attempts: total }
          : { reason: `handler defect: ${DeadLetter.reasonOf(Cause.squash(cause))}`, errorTag: "Defect", attempts: total }
      )
    }

    // No earlier delivery was acked (crash, stall, stop, or nack): park it rather than risk a crash loop
    // and have the broker drop it silently after its last delivery.
    const pastDeliveryLimit = (delivery: Delivery<A>, limit: number): Effect.Effect<Outcome> =>
      deadLetter(delivery, {
        reason: `delivered ${delivery.envelope.attempt} times, past the broker's limit of ${limit}: no earlier ` +
          `delivery was acked (the consumer crashed, stalled past the ack deadline, was stopped, or nacked it)`,
        errorTag: "DeliveryLimitExceeded",
        attempts: delivery.envelope.attempt - 1
      })

    const duplicate = (delivery: Delivery<A>): Effect.Effect<Outcome> =>
      Metric.update(Telemetry.duplicates, 1).pipe(
        Effect.andThen(settle(delivery, delivery.ack)),
        Effect.as("duplicate" as const)
      )

    /** A delivery whose id the group has not finished yet (or that has no stable id). */
    const processNew = (delivery: Delivery<A>): Effect.Effect<Outcome, DecodeError, R> => {
      const limit = delivery.deliveryLimit
      if (limit !== undefined && delivery.envelope.attempt > limit) return pastDeliveryLimit(delivery, limit)
      const value = delivery.value
      if (Result.isFailure(value)) return undecodable(delivery, value.failure)
      return runHandler(delivery, value.success)
    }

    // A redriven copy (`DeadLetters.redrive`) names the group it is meant for: another group acks it without
    // running its handler (it handled or parked the message already); the named group runs it even though its
    // ledger recorded the id (it had dead-lettered it), then remembers it as usual.
    const notForThisGroup = (delivery: Delivery<A>): Effect.Effect<Outcome> =>
      Metric.update(Telemetry.redrivesIgnored, 1).pipe(
        Effect.andThen(settle(delivery, delivery.ack)),
        Effect.as("ignored" as const)
      )

    // Written without a generator: this is the per-message hot path. The ledger is asked first, so an id the
    // group finished ends the same way whatever it would do now (a redelivered dead letter is not parked again).
    const processDelivery = (delivery: Delivery<A>): Effect.Effect<Outcome, DecodeError, R> => {
      const redriveGroup = delivery.envelope.headers[H.redriveGroup]
      if (redriveGroup !== undefined && redriveGroup !== group) return notForThisGroup(delivery)
      if (ledger === undefined || !hasStableId(delivery.envelope)) return processNew(delivery)
      // For this group's redriven copy the ledger is asked about this redrive, not the id (recorded when parked).
      const key = redriveKey(delivery.envelope) ?? delivery.envelope.id
      return Effect.flatMap(ledger.seen(key), (seen) => seen ? duplicate(delivery) : processNew(delivery))
    }

    // One `process <topic>` consumer span per message (OpenTelemetry messaging conventions, see
    // docs/telemetry.md), with the publisher's span as parent (default) or only as a link, and one `ack` /
    // `nack <topic>` settle span per settlement inside it. Skipped entirely when tracing is disabled
    // (`References.TracerEnabled`): the untraced hot path allocates nothing for telemetry.
    const tracingEnabled = yield* References.TracerEnabled
    const spanOptions = (delivery: Delivery<A>): Tracer.SpanOptions => {
      const envelope = delivery.envelope
      const upstream = Telemetry.parseTraceparent(envelope.headers[H.traceparent])
      const base = {
        kind: "consumer",
        captureStackTrace: false,
        attributes: {
          ...attributes,
          ...Telemetry.messageAttributes(envelope),
          "switchyard.message.delivery_attempt": envelope.attempt,
          ...broker.telemetryAttributes?.(envelope)
        }
      } as const
      if (upstream === undefined) return base
      const links = [{ span: upstream, attributes: {} }]
      return options.traceContext === "link" ? { ...base, links } : { ...base, parent: upstream, links }
    }
    const settleSpan = (delivery: Delivery<A>, operationName: "ack" | "nack"): Tracer.SpanOptions => ({
      kind: "client",
      captureStackTrace: false,
      attributes: Telemetry.messagingAttributes(broker.system, topic.name, "settle", {
        ...groupAttribute,
        "messaging.message.id": delivery.envelope.id
      }, operationName)
    })
    const withSettleSpans = (delivery: Delivery<A>): Delivery<A> => ({
      ...delivery,
      ack: Effect.withSpan(delivery.ack, Telemetry.spanName("ack", topic.name), settleSpan(delivery, "ack")),
      nack: (nackOptions) =>
        Effect.withSpan(delivery.nack(nackOptions), Telemetry.spanName("nack", topic.name), settleSpan(delivery, "nack"))
    })
    const processName = Telemetry.spanName("process", topic.name)
    const annotateOutcome = (outcome: Outcome) => Effect.annotateCurrentSpan("switchyard.outcome", outcome)
    const handle = (delivery: Delivery<A>): Effect.Effect<Outcome, DecodeError, R> =>
      Effect.trackDuration(
        tracingEnabled
          ? Effect.withSpan(Effect.tap(processDelivery(withSettleSpans(delivery)), annotateOutcome), processName, spanOptions(delivery))
          : processDelivery(delivery),
        Telemetry.handlingDuration
      )

    const laneOf = ordering === "partition"
      ? (delivery: Delivery<A>) => delivery.envelope.coordinates.lane ?? ""
      : (delivery: Delivery<A>) => delivery.envelope.key ?? delivery.envelope.id

    // Deliveries taken but not started when shutdown begins go back to the broker at once (nack, no delay), so
    // another member gets them now rather than after the broker's ack deadline (JetStream's ack wait).
    const pending = new Pending<Delivery<A>>()
    const release = (delivery: Delivery<A>) => settle(delivery, delivery.nack())
    const releasePending = Effect.suspend(() => Effect.forEach(pending.takeAll(), release, { discard: true }))
    /** Runs a delivery a lane reached, unless it was given back already (or shutdown began: give it back). */
    const begin = (delivery: Delivery<A>) =>
      !pending.start(delivery) ? Effect.void : Deferred.isDoneUnsafe(stop) ? release(delivery) : handle(delivery)

    // Sequential work runs per chunk (no per-element stream step); parallel work uses lanes.
    const handleChunk = (chunk: ReadonlyArray<Delivery<A>>) =>
      Effect.andThen(Metric.update(Telemetry.consumed, chunk.length), Effect.forEach(chunk, begin, { discard: true }))
    const processAll = (deliveries: Stream.Stream<Delivery<A>, SubscribeError>) =>
      concurrency === 1
        ? Stream.runForEachArray(deliveries, handleChunk)
        : ordering === "none"
        ? Stream.runDrain(Stream.mapEffect(deliveries, (delivery) =>
          Effect.andThen(Metric.update(Telemetry.consumed, 1), begin(delivery)), {
          concurrency,
          unordered: true
        }))
        : deliveries.pipe(
          Stream.groupByKey((delivery) => keyHash(laneOf(delivery)) % concurrency, { bufferSize: prefetch }),
          Stream.mapEffect(([, lane]) => Stream.runForEachArray(lane, handleChunk), { concurrency: "unbounded" }),
          Stream.runDrain
        )

    // Each subscription lives in a scope of its own, closed only after the last settlement: during a
    // drain the channel/consumer that delivered a message is still there to ack it.
    const subscribeAndProcess = Effect.acquireUseRelease(
      Scope_.make(),
      (scope) =>
        Effect.gen(function*() {
          const rawStream = yield* broker.subscribe(topic.name, Subscriber.resolveOptions({
            group,
            prefetch,
            startFrom: options.startFrom
          })).pipe(Scope_.provide(scope))
          yield* Effect.logDebug(`consumer "${group}" subscribed to ${topic.name}`)
          // On shutdown the broker takes back what this member buffered but never took, then the consumer gives back
          // what it took but did not start: other members get both now, while in-flight handlers drain.
          const stopIntake = rawStream.stopIntake ?? Effect.void
          yield* Effect.forkIn(Effect.andThen(Deferred.await(stop), Effect.andThen(stopIntake, releasePending)), scope)
          const deliveries = rawStream.deliveries.pipe(
            Stream.map((raw) => pending.add(Subscriber.decode(topic, raw))),
            Stream.interruptWhen(Deferred.await(stop))
          )
          yield* processAll(deliveries)
        }),
      // Whatever no lane reached is given back before the subscription closes; after a subscription failure the
      // broker redelivers it anyway (its channel is gone): forget it.
      (scope, exit) =>
        Effect.andThen(
          Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? Effect.sync(() => pending.takeAll()) : releasePending,
          Scope_.close(scope, exit)
        )
    )
    const supervised = options.restart === undefined
      ? subscribeAndProcess
      : subscribeAndProcess.pipe(
        Effect.tapError((error) =>
          restartable(error)
            ? Effect.logWarning(`consumer "${group}" on ${topic.name}: subscription failed, restarting`, error)
            : Effect.void
        ),
        Effect.retry({ schedule: options.restart, while: restartable })
      )
    const subscriptionScope = yield* Scope_.make()
    const fiber = yield* Effect.forkIn(supervised, subscriptionScope)
    return yield* Fiber.join(fiber).pipe(
      Effect.onInterrupt(() =>
        Effect.gen(function*() {
          yield* Effect.logInfo(`consumer "${group}" on ${topic.name}: draining in-flight messages`)
          yield* Deferred.succeed(stop, undefined)
          const drained = yield* Fiber.await(fiber).pipe(Effect.timeoutOption(drainTimeout))
          if (Option.isNone(drained)) {
            yield* Effect.logWarning(
              `consumer "${group}" on ${topic.name}: drain timeout, interrupting handlers (unsettled messages will be redelivered)`
            )
          }
        })
      ),
      Effect.ensuring(Scope_.close(subscriptionScope, Exit.void))
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
 * @since 0.1.0
 */
export const start = <A, E, R>(
  topic: Topic<A>,
  handler: Handler<A, E, R>,
  options: Options<E> = {}
): Effect.Effect<Fiber.Fiber<void, SubscribeError | DecodeError>, never, R | Broker | Scope.Scope> =>
  Effect.forkScoped(run(topic, handler, options))
