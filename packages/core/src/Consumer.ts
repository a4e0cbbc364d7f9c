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
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Option, References, Result, Stream } from "effect"
import * as Scope_ from "effect/Scope"
import { Broker } from "./Broker.ts"
import type { Envelope, OutgoingMessage } from "./Envelope.ts"
import { describe as describeEnvelope } from "./Envelope.ts"
import { type DecodeError, HandlerTimeoutError, type SubscribeError } from "./Errors.ts"
import * as H from "./Headers.ts"
import * as Idempotency from "./Idempotency.ts"
import { keyHash } from "./internal/hash.ts"
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
  /** Deliveries held unacknowledged (default: `max(16, 4 × concurrency)`). */
  readonly prefetch?: number | undefined
  /** Where a new group starts (default `"earliest"`). */
  readonly startFrom?: Subscriber.Options["startFrom"]
  /** Retry policy for failed handlers; its input is the error (default: no retries). */
  readonly retry?: Schedule.Schedule<unknown, E | HandlerTimeoutError> | undefined
  /** Tells retryable from fatal errors (default: every typed error is retryable). Defects are never retried. */
  readonly isRetryable?: ((error: E | HandlerTimeoutError) => boolean) | undefined
  /** Fail a handler run that takes longer than this (a retryable `HandlerTimeoutError`). */
  readonly handlerTimeout?: Duration.Input | undefined
  /** On shutdown, how long in-flight handlers may take to finish (default 30 seconds). */
  readonly drainTimeout?: Duration.Input | undefined
  /** Dead-letter destination (default `"<topic>.dlq"`); `false` nacks instead (the broker redelivers). */
  readonly deadLetter?: string | false | undefined
  /** What to do with a payload that cannot be decoded (default `"dead-letter"`). */
  readonly onDecodeFailure?: "dead-letter" | "skip" | "fail" | undefined
  /** What to do with a well-formed payload of an unknown event type (see `Router`; default `"dead-letter"`). */
  readonly onUnknownType?: "dead-letter" | "ignore" | undefined
  /** Skip messages whose id this group already processed. */
  readonly idempotency?: Idempotency.Options | boolean | undefined
  /**
   * Restart the subscription when it fails (`SubscribeError`), per this schedule; handlers in flight are
   * unaffected and unsettled messages come back from the broker. Default: the consumer fails.
   */
  readonly restart?: Schedule.Schedule<unknown, SubscribeError | DecodeError> | undefined
  /** Continue the publisher's trace as the parent (default) or link to it. */
  readonly traceContext?: "parent" | "link" | undefined
}

/** How a delivery ended, for tests and logs. @since 0.1.0 */
export type Outcome = "handled" | "duplicate" | "dead-lettered" | "skipped" | "ignored" | "nacked"

interface Failure {
  readonly reason: string
  readonly errorTag: string
  readonly attempts: number
}

const errorTagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : error instanceof Error
    ? error.name
    : "UnknownError"

/** A readable reason for any error value; total: never throws, never `undefined`. */
const reasonOf = (error: unknown): string => {
  if (error instanceof Error) return error.message || error.name
  if (typeof error === "string") return error
  try {
    // `JSON.stringify` throws on cycles and BigInt, and returns `undefined` for `undefined`, functions, symbols.
    const json: string | undefined = JSON.stringify(error)
    if (json !== undefined) return json
  } catch {
    // fall through
  }
  try {
    return String(error)
  } catch {
    // An object without a prototype, or whose `toString` throws.
    return "unprintable error value"
  }
}

/**
 * Builds the message sent to a dead-letter destination: the original payload, key and headers plus the
 * reason headers. Its id is derived from the original id and the group (`<id>.dlq.<group>`), so that
 * brokers that deduplicate by id (JetStream) keep one dead letter per group, and a redelivered message
 * dead-lettered twice by one group stays one dead letter there.
 *
 * @since 0.1.0
 */
export const deadLetterMessage = (
  envelope: Envelope,
  group: string,
  failure: Failure,
  now: number
): OutgoingMessage => ({
  id: `${envelope.id}.dlq.${group}`,
  key: envelope.key,
  timestamp: envelope.timestamp,
  contentType: envelope.contentType,
  payload: envelope.payload,
  correlationId: envelope.correlationId,
  causationId: envelope.causationId,
  headers: {
    ...envelope.headers,
    [H.deadLetterReason]: failure.reason,
    [H.deadLetterOriginalId]: envelope.id,
    [H.deadLetterErrorTag]: failure.errorTag,
    [H.deadLetterAttempts]: String(failure.attempts),
    [H.deadLetterOriginDestination]: envelope.coordinates.destination,
    [H.deadLetterOriginGroup]: group,
    [H.deadLetterOriginCoordinates]: JSON.stringify(envelope.coordinates),
    [H.deadLetterAt]: String(now)
  }
})

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
    const prefetch = options.prefetch ?? Math.max(16, concurrency * 4)
    const drainTimeout = options.drainTimeout ?? Duration.seconds(30)
    const deadLetterDestination = options.deadLetter === undefined ? `${topic.name}.dlq` : options.deadLetter
    const isRetryable = options.isRetryable ?? (() => true)
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

    const deadLetter = (delivery: Delivery<A>, failure: Failure): Effect.Effect<Outcome> => {
      if (deadLetterDestination === false) {
        return Effect.as(settle(delivery, delivery.nack()), "nacked" as const)
      }
      return Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const sent = yield* Effect.result(
          broker.publish(deadLetterDestination, [deadLetterMessage(delivery.envelope, group, failure, now)])
        )
        if (Result.isFailure(sent)) {
          // Never ack what could not be parked: let the broker redeliver it later.
          yield* Effect.logError(`dead-lettering ${describeEnvelope(delivery.envelope)} failed; nacking`, sent.failure)
          yield* settle(delivery, delivery.nack({ delay: Duration.seconds(1) }))
          return "nacked" as const
        }
        yield* Effect.logWarning(
          `dead-lettered ${describeEnvelope(delivery.envelope)} to ${deadLetterDestination}: ${failure.errorTag}: ${failure.reason}`
        )
        yield* Metric.update(Telemetry.deadLettered, 1)
        yield* settle(delivery, delivery.ack)
        return "dead-lettered" as const
      })
    }

    const runHandler = (value: A, envelope: Envelope, attempts: { count: number }) => {
      if (handlerTimeout === undefined && options.retry === undefined) {
        // The common case allocates nothing around the handler.
        attempts.count = 1
        return handler(value, envelope)
      }
      const once = Effect.suspend(() => {
        attempts.count++
        return handler(value, envelope)
      })
      const timed: Effect.Effect<unknown, E | HandlerTimeoutError, R> = handlerTimeout === undefined
        ? once
        : Effect.timeoutOrElse(once, {
          duration: handlerTimeout,
          orElse: () =>
            Effect.fail(new HandlerTimeoutError({ destination: topic.name, timeoutMillis: Duration.toMillis(handlerTimeout) }))
        })
      return options.retry === undefined
        ? timed
        : Effect.retry(timed, {
          schedule: options.retry,
          while: (error: E | HandlerTimeoutError) => isRetryable(error)
        })
    }

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
          ? { reason: reasonOf(error.value), errorTag: errorTagOf(error.value), attempts: total }
          : { reason: `handler defect: ${reasonOf(Cause.squash(cause))}`, errorTag: "Defect", attempts: total }
      )
    }

    const runAndSettle = (delivery: Delivery<A>, value: A): Effect.Effect<Outcome, never, R> => {
      const attempts = { count: 0 }
      return Effect.flatMap(Effect.exit(runHandler(value, delivery.envelope, attempts)), (exit) => {
        const retried = attempts.count > 1 ? Metric.update(Telemetry.retried, attempts.count - 1) : Effect.void
        if (Exit.isFailure(exit)) return Effect.andThen(retried, failed(delivery, exit.cause, attempts.count))
        const done = Effect.as(settle(delivery, delivery.ack), "handled" as const)
        return Effect.andThen(retried, ledger === undefined ? done : Effect.andThen(ledger.remember(delivery.envelope.id), done))
      })
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

    // Written without a generator: this is the per-message hot path.
    const processDelivery = (delivery: Delivery<A>): Effect.Effect<Outcome, DecodeError, R> => {
      const limit = delivery.deliveryLimit
      if (limit !== undefined && delivery.envelope.attempt > limit) return pastDeliveryLimit(delivery, limit)
      const value = delivery.value
      if (Result.isFailure(value)) return undecodable(delivery, value.failure)
      if (ledger === undefined) return runAndSettle(delivery, value.success)
      return Effect.flatMap(ledger.seen(delivery.envelope.id), (seen) =>
        seen
          ? Metric.update(Telemetry.duplicates, 1).pipe(
            Effect.andThen(settle(delivery, delivery.ack)),
            Effect.as("duplicate" as const)
          )
          : runAndSettle(delivery, value.success))
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

    // Sequential work runs per chunk (no per-element stream step); parallel work uses lanes.
    const handleChunk = (chunk: ReadonlyArray<Delivery<A>>) =>
      Effect.andThen(
        Metric.update(Telemetry.consumed, chunk.length),
        // Deliveries already buffered when shutdown began are left unsettled: the broker redelivers them.
        Effect.forEach(chunk, (delivery) => Deferred.isDoneUnsafe(stop) ? Effect.void : handle(delivery), { discard: true })
      )
    const processAll = (deliveries: Stream.Stream<Delivery<A>, SubscribeError>) =>
      concurrency === 1
        ? Stream.runForEachArray(deliveries, handleChunk)
        : ordering === "none"
        ? Stream.runDrain(Stream.mapEffect(deliveries, (delivery) =>
          Deferred.isDoneUnsafe(stop) ? Effect.void : Effect.andThen(Metric.update(Telemetry.consumed, 1), handle(delivery)), {
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
          const deliveries = rawStream.deliveries.pipe(
            Stream.map((raw) => Subscriber.decode(topic, raw)),
            Stream.interruptWhen(Deferred.await(stop))
          )
          yield* processAll(deliveries)
        }),
      (scope, exit) => Scope_.close(scope, exit)
    )
    const supervised = options.restart === undefined
      ? subscribeAndProcess
      : subscribeAndProcess.pipe(
        Effect.tapError((error) =>
          error._tag === "SubscribeError"
            ? Effect.logWarning(`consumer "${group}" on ${topic.name}: subscription failed, restarting`, error)
            : Effect.void
        ),
        Effect.retry({ schedule: options.restart, while: (error) => error._tag === "SubscribeError" })
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
 * @since 0.1.0
 */
export const start = <A, E, R>(
  topic: Topic<A>,
  handler: Handler<A, E, R>,
  options: Options<E> = {}
): Effect.Effect<Fiber.Fiber<void, SubscribeError | DecodeError>, never, R | Broker | Scope.Scope> =>
  Effect.forkScoped(run(topic, handler, options))
