/**
 * Observability shared by every broker: `Metric`s for published / consumed / retried / dead-lettered
 * messages and a handling-duration histogram, plus W3C trace context propagation through headers.
 * Spans themselves are created by `Publisher` and `Consumer` (one per publish call and per handled
 * message, kind producer/consumer, with OpenTelemetry messaging attributes).
 *
 * @since 0.1.0
 */
import { Effect, Metric, Option, Tracer } from "effect"
import type { Headers } from "./Headers.ts"
import * as H from "./Headers.ts"

/** Messages confirmed by the broker. @since 0.1.0 */
export const published = Metric.counter("switchyard_messages_published", {
  description: "Messages published and confirmed by the broker",
  incremental: true
})
/** Messages handed to a handler (after decoding), including redeliveries. @since 0.1.0 */
export const consumed = Metric.counter("switchyard_messages_consumed", {
  description: "Deliveries taken by consumers",
  incremental: true
})
/** Handler retries (each re-run of a failed handler). @since 0.1.0 */
export const retried = Metric.counter("switchyard_messages_retried", {
  description: "Handler retries",
  incremental: true
})
/** Messages sent to a dead-letter destination. @since 0.1.0 */
export const deadLettered = Metric.counter("switchyard_messages_dead_lettered", {
  description: "Messages sent to a dead-letter destination",
  incremental: true
})
/** Messages skipped because their id was already processed (idempotency). @since 0.1.0 */
export const duplicates = Metric.counter("switchyard_messages_duplicates_skipped", {
  description: "Messages skipped as duplicates",
  incremental: true
})
/** Time from taking a delivery to settling it, in milliseconds. @since 0.1.0 */
export const handlingDuration = Metric.timer("switchyard_handling_duration", {
  description: "Time from delivery to settlement"
})

/**
 * The `traceparent` header value of a span (W3C Trace Context, version 00).
 *
 * @since 0.1.0
 */
export const formatTraceparent = (span: Tracer.AnySpan): string =>
  `00-${span.traceId.padStart(32, "0").slice(-32)}-${span.spanId.padStart(16, "0").slice(-16)}-${span.sampled ? "01" : "00"}`

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/**
 * Parses a `traceparent` header into an external span usable as a parent or a link.
 *
 * @example
 * ```ts
 * import { Telemetry } from "@switchyard/core"
 * Telemetry.parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
 * ```
 * @since 0.1.0
 */
export const parseTraceparent = (value: string | undefined): Tracer.ExternalSpan | undefined => {
  if (value === undefined) return undefined
  const match = traceparentPattern.exec(value.trim().toLowerCase())
  if (match === null) return undefined
  return Tracer.externalSpan({ traceId: match[1]!, spanId: match[2]!, sampled: (Number.parseInt(match[3]!, 16) & 1) === 1 })
}

/**
 * Adds the current span's trace context to headers (unchanged when there is no current span).
 *
 * @since 0.1.0
 */
export const injectTraceContext = (headers: Headers): Effect.Effect<Headers> =>
  Effect.map(Effect.option(Effect.currentSpan), (span) =>
    Option.isSome(span) ? { ...headers, [H.traceparent]: formatTraceparent(span.value) } : headers)

/**
 * OpenTelemetry messaging attributes for a span.
 *
 * @since 0.1.0
 */
export const messagingAttributes = (
  system: string,
  destination: string,
  operation: "publish" | "process",
  extra?: Record<string, unknown>
): Record<string, unknown> => ({
  "messaging.system": system,
  "messaging.destination.name": destination,
  "messaging.operation.type": operation,
  ...extra
})
