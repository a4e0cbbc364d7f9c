/**
 * The tracing stage: one `process <topic>` consumer span per message (OpenTelemetry messaging conventions,
 * see docs/telemetry.md), with the publisher's span as parent (default) or only as a link, and one `ack` /
 * `nack <topic>` settle span per settlement inside it; every message's handling time goes to
 * `switchyard_handling_duration` (unless `Telemetry.PerMessageMetrics` is off). With tracing disabled
 * (`Telemetry.tracing`: `References.TracerEnabled` off, or no tracing backend) the stage adds no span; with
 * metrics off too it is the next step itself.
 */
import { Clock, Duration, Effect, type Metric, Tracer } from "effect"
import type { BrokerShape } from "../../Broker.ts"
import type { AckError } from "../../Errors.ts"
import * as H from "../../Headers.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import { label } from "./outcome.ts"
import type { Step } from "./step.ts"

/** What the tracing stage reads. */
export interface Context {
  readonly enabled: boolean
  /** `Telemetry.PerMessageMetrics`: time every message into `switchyard_handling_duration`. */
  readonly metrics: boolean
  readonly broker: Pick<BrokerShape, "system" | "telemetryAttributes">
  readonly destination: string
  readonly group: string
  readonly traceContext: "parent" | "link"
}

/**
 * `Effect.trackDuration` at a fraction of its cost per message: two clock reads, one `Duration`, and the
 * timer updated in place (no dual-argument dispatch, no three Durations and no `Metric.update` effect per
 * run). The fiber's `Clock` (a `TestClock` in tests) and its metric context, as `trackDuration` uses them.
 */
export const timedInto = (timer: Metric.Metric<Duration.Duration, unknown>) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    const start = clock.monotonicTimeNanosUnsafe()
    return Effect.onExit(effect, () => {
      timer.updateUnsafe(Duration.nanos(clock.monotonicTimeNanosUnsafe() - start), fiber.context)
      return Effect.void
    })
  })

/** Spans (when enabled) and the handling-time metric around the rest of the steps. */
export const traced = (context: Context) => <A, E, R>(next: Step<A, E, R>): Step<A, E, R> => {
  const timed = context.metrics ? timedInto(Telemetry.handlingDuration) : <X>(handling: X) => handling
  if (!context.enabled) return context.metrics ? (delivery) => timed(next(delivery)) : next
  const { broker, destination } = context
  const groupAttribute = { "messaging.consumer.group.name": context.group }
  const processName = Telemetry.spanName("process", destination)
  const ackName = Telemetry.spanName("ack", destination)
  const nackName = Telemetry.spanName("nack", destination)

  // What every span of this consumer carries is built once; a message adds its own attributes to its span
  // (`span.attribute`), without an attributes object per message.
  const processOptions = {
    kind: "consumer",
    captureStackTrace: false,
    attributes: Telemetry.messagingAttributes(broker.system, destination, "process", groupAttribute)
  } as const
  const settleOptions = (operationName: "ack" | "nack"): Tracer.SpanOptions => ({
    kind: "client",
    captureStackTrace: false,
    attributes: Telemetry.messagingAttributes(broker.system, destination, "settle", groupAttribute, operationName)
  })
  const ackOptions = settleOptions("ack")
  const nackOptions = settleOptions("nack")

  const spanOptions = (delivery: Delivery<A>): Tracer.SpanOptions => {
    const upstream = Telemetry.parseTraceparent(delivery.envelope.headers[H.traceparent])
    if (upstream === undefined) return processOptions
    const links = [{ span: upstream, attributes: {} }]
    return context.traceContext === "link" ? { ...processOptions, links } : { ...processOptions, parent: upstream, links }
  }
  const annotate = (span: Tracer.Span, envelope: Delivery<A>["envelope"]): void => {
    const attributes = Telemetry.messageAttributes(envelope)
    for (const key in attributes) span.attribute(key, attributes[key])
    span.attribute("switchyard.message.delivery_attempt", envelope.attempt)
    const native = broker.telemetryAttributes?.(envelope)
    if (native !== undefined) for (const key in native) span.attribute(key, native[key])
  }
  const settleSpan = (name: string, options: Tracer.SpanOptions, id: string, settlement: Effect.Effect<void, AckError>) =>
    Effect.useSpan(name, options, (span) => {
      span.attribute("messaging.message.id", id)
      return settlement
    })
  // `useSpan`, not `withSpan`: a settlement starts no child span of its own, so its span need not become
  // the parent in the fiber's context (a context copy per settlement saved)
  const withSettleSpans = (delivery: Delivery<A>): Delivery<A> => ({
    ...delivery,
    ack: settleSpan(ackName, ackOptions, delivery.envelope.id, delivery.ack),
    nack: (options) => settleSpan(nackName, nackOptions, delivery.envelope.id, delivery.nack(options))
  })
  // The process span becomes the parent of what the handler does (its spans, the trace context of what it
  // publishes) through `Tracer.ParentSpan` alone: `withSpan` would also push a stack frame, a second copy of
  // the fiber's context per message, for stack traces that `captureStackTrace: false` leaves empty anyway.
  return (delivery) =>
    timed(Effect.useSpan(processName, spanOptions(delivery), (span) => {
      annotate(span, delivery.envelope)
      const outcome = Effect.map(next(withSettleSpans(delivery)), (outcome) => {
        span.attribute("switchyard.outcome", label(outcome))
        return outcome
      })
      return Effect.provideService(outcome, Tracer.ParentSpan, span)
    }))
}
