/**
 * Observability shared by every broker: `Metric`s for published / consumed / retried / dead-lettered
 * messages and a handling-duration histogram, plus W3C trace context propagation through headers.
 * Spans themselves are created by `Publisher` and `Consumer` (`send <destination>` per publish call,
 * `process <destination>` per handled message, `ack` / `nack <destination>` per settlement), following the
 * OpenTelemetry messaging semantic conventions; docs/telemetry.md has the mapping.
 *
 * @since 0.1.0
 */
import { Context, Effect, Metric, Option, References, Tracer } from "effect"
import type { OutgoingMessage } from "./Envelope.ts"
import type { Headers } from "./Headers.ts"
import * as H from "./Headers.ts"

/** Messages confirmed by the broker. @category metrics @since 0.1.0 */
export const published = Metric.counter("switchyard_messages_published", {
  description: "Messages published and confirmed by the broker",
  incremental: true
})
/** Messages handed to a handler (after decoding), including redeliveries. @category metrics @since 0.1.0 */
export const consumed = Metric.counter("switchyard_messages_consumed", {
  description: "Deliveries taken by consumers",
  incremental: true
})
/** Handler retries (each re-run of a failed handler). @category metrics @since 0.1.0 */
export const retried = Metric.counter("switchyard_messages_retried", {
  description: "Handler retries",
  incremental: true
})
/** Messages sent to a dead-letter destination. @category metrics @since 0.1.0 */
export const deadLettered = Metric.counter("switchyard_messages_dead_lettered", {
  description: "Messages sent to a dead-letter destination",
  incremental: true
})
/** Messages skipped because their id was already processed (idempotency). @category metrics @since 0.1.0 */
export const duplicates = Metric.counter("switchyard_messages_duplicates_skipped", {
  description: "Messages skipped as duplicates",
  incremental: true
})
/**
 * Redriven copies a consumer acknowledged without running its handler: meant for another group
 * (`x-switchyard-redrive-group`, see `DeadLetters.redrive`).
 *
 * @category metrics
 * @since 0.2.0
 */
export const redrivesIgnored = Metric.counter("switchyard_redrives_ignored", {
  description: "Redriven copies meant for another consumer group, acknowledged without handling",
  incremental: true
})

/**
 * Whether consumers keep the per-message metrics: `switchyard_messages_consumed` and the
 * `switchyard_handling_duration` histogram (default `true`). Off, a consumer times nothing and counts nothing
 * per message (with `References.TracerEnabled` off as well, nothing of telemetry is allocated per message);
 * the counters of rare events (retries, dead letters, duplicates, ignored redrives) and the publisher's
 * per-batch count are kept either way. Read when `Consumer.run` starts.
 *
 * @example
 * ```ts
 * import { Effect, References } from "effect"
 * import { Consumer, Telemetry, Topic } from "@switchyard/core"
 * import { Schema } from "effect"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const lean = Consumer.run(orders, () => Effect.void, { group: "billing" }).pipe(
 *   Effect.provideService(Telemetry.PerMessageMetrics, false),
 *   Effect.provideService(References.TracerEnabled, false)
 * )
 * ```
 * @category metrics
 * @since 0.4.0
 */
export const PerMessageMetrics: Context.Reference<boolean> = Context.Reference<boolean>(
  "@switchyard/core/Telemetry/PerMessageMetrics",
  { defaultValue: () => true }
)

/**
 * Whether Switchyard creates its spans (`send`, `process`, `ack` / `nack`) in the current fiber:
 * `References.TracerEnabled` is on **and** a tracing backend is installed (a `Tracer` other than Effect's
 * `Tracer.nativeTracer`, e.g. `@effect/opentelemetry` or `effect/observability`'s OTLP layer).
 * Effect's own HTTP server makes the same choice: the native tracer exports nothing, so its spans (and
 * the `traceparent` headers they would write) are unobservable work per message. Read when `Consumer.run`
 * starts and at every publish call.
 *
 * @example
 * ```ts
 * import { Effect, Tracer } from "effect"
 * import { Telemetry } from "@switchyard/core"
 * const withoutBackend = Telemetry.tracing // false: only the native tracer
 * const withBackend = Telemetry.tracing.pipe(
 *   Effect.withTracer(Tracer.make({ span: (options) => new Tracer.NativeSpan(options) }))
 * ) // true
 * ```
 * @category tracing
 * @since 0.4.0
 */
export const tracing: Effect.Effect<boolean> = Effect.withFiber((fiber) =>
  Effect.succeed(fiber.getRef(References.TracerEnabled) && fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer)
)

/** Time from taking a delivery to settling it, in milliseconds. @category metrics @since 0.1.0 */
export const handlingDuration = Metric.timer("switchyard_handling_duration", {
  description: "Time from delivery to settlement"
})

/**
 * The `traceparent` header value of a span (W3C Trace Context, version 00).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Telemetry } from "@switchyard/core"
 * const traceparent = Effect.currentSpan.pipe(Effect.map(Telemetry.formatTraceparent), Effect.withSpan("checkout"))
 * // "00-<32 hex digits of trace id>-<16 hex digits of span id>-01"
 * ```
 * @category tracing
 * @since 0.1.0
 */
export const formatTraceparent = (span: Tracer.AnySpan): string =>
  `00-${span.traceId.padStart(32, "0").slice(-32)}-${span.spanId.padStart(16, "0").slice(-16)}-${span.sampled ? "01" : "00"}`

// W3C Trace Context: lowercase hex only. Version 00 has exactly four fields; a later version may append
// fields after a dash, which a version-00 parser skips. Version ff is invalid.
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const allZeros = /^0+$/

/**
 * Parses a `traceparent` header (W3C Trace Context) into an external span usable as a parent or a link.
 * Invalid values are ignored (`undefined`), as the specification requires: uppercase hex, version `ff`,
 * wrong field lengths, extra fields on version `00`, and an all-zero trace id or parent id. Surrounding
 * whitespace is trimmed, as HTTP does for header values.
 *
 * @example
 * ```ts
 * import { Telemetry } from "@switchyard/core"
 * Telemetry.parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
 * ```
 * @category tracing
 * @since 0.1.0
 */
export const parseTraceparent = (value: string | undefined): Tracer.ExternalSpan | undefined => {
  if (value === undefined) return undefined
  const match = traceparentPattern.exec(value.trim())
  if (match === null) return undefined
  const [, version, traceId, spanId, flags, rest] = match
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined
  if (traceId === undefined || spanId === undefined || flags === undefined) return undefined
  if (allZeros.test(traceId) || allZeros.test(spanId)) return undefined
  return Tracer.externalSpan({ traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 })
}

/**
 * Adds the current span's trace context to headers (unchanged when there is no current span, or when
 * tracing is disabled and the current span is a no-op one that must not propagate).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Telemetry } from "@switchyard/core"
 * const headers = Telemetry.injectTraceContext({ "x-tenant": "acme" }).pipe(Effect.withSpan("send orders"))
 * // { "x-tenant": "acme", traceparent: "00-…-01" }
 * ```
 * @category tracing
 * @since 0.1.0
 */
export const injectTraceContext = (headers: Headers): Effect.Effect<Headers> =>
  // Read from the context rather than `Effect.currentSpan`, whose failure without a span builds an error
  // (a stack trace) on every call; only a span of this process (not an external parent) propagates.
  Effect.map(Effect.serviceOption(Tracer.ParentSpan), (span) =>
    Option.isSome(span) && span.value._tag === "Span" && !Context.get(span.value.annotations, Tracer.DisablePropagation)
      ? { ...headers, [H.traceparent]: formatTraceparent(span.value) }
      : headers)

/**
 * The messaging operation types of the OpenTelemetry semantic conventions (`messaging.operation.type`).
 * Switchyard records `send` (publish), `process` (a consumer handling a delivery) and `settle`
 * (ack / nack); `receive` is for pull APIs (see docs/telemetry.md).
 *
 * @category models
 * @since 0.2.0
 */
export type OperationType = "send" | "receive" | "process" | "settle"

/**
 * The span name of a messaging operation: `<operation name> <destination>` (e.g. `send orders`).
 *
 * @example
 * ```ts
 * import { Telemetry } from "@switchyard/core"
 * const name = Telemetry.spanName("process", "orders") // "process orders"
 * ```
 * @category tracing
 * @since 0.2.0
 */
export const spanName = (operationName: string, destination: string): string => `${operationName} ${destination}`

/**
 * OpenTelemetry messaging attributes of a span: system, destination, operation type and name.
 *
 * @example
 * ```ts
 * import { Telemetry } from "@switchyard/core"
 * const attributes = Telemetry.messagingAttributes("rabbitmq", "orders", "process", {
 *   "messaging.consumer.group.name": "billing"
 * }) // { "messaging.system": "rabbitmq", "messaging.destination.name": "orders", ... }
 * ```
 * @category tracing
 * @since 0.1.0
 */
export const messagingAttributes = (
  system: string,
  destination: string,
  operation: OperationType,
  extra?: Record<string, unknown>,
  operationName: string = operation
): Record<string, unknown> => ({
  "messaging.system": system,
  "messaging.destination.name": destination,
  "messaging.operation.type": operation,
  "messaging.operation.name": operationName,
  ...extra
})

/**
 * The per-message attributes of a span that accounts for one message: `messaging.message.id`,
 * `messaging.message.conversation_id` (the correlation id, when set) and `messaging.message.body.size`.
 *
 * @example
 * ```ts
 * import { Envelope, Telemetry } from "@switchyard/core"
 * const attributes = Telemetry.messageAttributes({ id: Envelope.makeId(), correlationId: "checkout-42", payload: new Uint8Array(12) })
 * // { "messaging.message.id": "…", "messaging.message.conversation_id": "checkout-42", "messaging.message.body.size": 12 }
 * ```
 * @category tracing
 * @since 0.2.0
 */
export const messageAttributes = (
  message: Pick<OutgoingMessage, "id" | "correlationId" | "payload">
): Record<string, string | number> => {
  const attributes: Record<string, string | number> = {
    "messaging.message.id": message.id,
    "messaging.message.body.size": message.payload.length
  }
  if (message.correlationId !== undefined && message.correlationId !== "") {
    attributes["messaging.message.conversation_id"] = message.correlationId
  }
  return attributes
}
