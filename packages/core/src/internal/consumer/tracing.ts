/**
 * The tracing stage: one `process <topic>` consumer span per message (OpenTelemetry messaging conventions,
 * see docs/telemetry.md), with the publisher's span as parent (default) or only as a link, and one `ack` /
 * `nack <topic>` settle span per settlement inside it; every message's handling time goes to
 * `switchyard_handling_duration` (unless `Telemetry.PerMessageMetrics` is off). With tracing disabled
 * (`References.TracerEnabled`) the stage adds no span; with both off it is the next step itself.
 */
import type { Tracer } from "effect"
import { Effect } from "effect"
import type { BrokerShape } from "../../Broker.ts"
import * as H from "../../Headers.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import { label, type Outcome } from "./outcome.ts"
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

const annotateOutcome = (outcome: Outcome) => Effect.annotateCurrentSpan("switchyard.outcome", label(outcome))

/** Spans (when enabled) and the handling-time metric around the rest of the steps. */
export const traced = (context: Context) => <A, E, R>(next: Step<A, E, R>): Step<A, E, R> => {
  const timed = context.metrics
    ? (handling: Effect.Effect<Outcome, E, R>) => Effect.trackDuration(handling, Telemetry.handlingDuration)
    : (handling: Effect.Effect<Outcome, E, R>) => handling
  if (!context.enabled) return context.metrics ? (delivery) => timed(next(delivery)) : next
  const { broker, destination } = context
  const groupAttribute = { "messaging.consumer.group.name": context.group }
  const attributes = Telemetry.messagingAttributes(broker.system, destination, "process", groupAttribute)
  const processName = Telemetry.spanName("process", destination)
  const ackName = Telemetry.spanName("ack", destination)
  const nackName = Telemetry.spanName("nack", destination)

  // One attributes object per message, filled in place: the span copies them into its own map anyway.
  const processAttributes = (envelope: Delivery<A>["envelope"]): Record<string, unknown> => {
    const out: Record<string, unknown> = Object.assign(Telemetry.messageAttributes(envelope), attributes)
    out["switchyard.message.delivery_attempt"] = envelope.attempt
    const native = broker.telemetryAttributes?.(envelope)
    return native === undefined ? out : Object.assign(out, native)
  }
  const spanOptions = (delivery: Delivery<A>): Tracer.SpanOptions => {
    const envelope = delivery.envelope
    const upstream = Telemetry.parseTraceparent(envelope.headers[H.traceparent])
    const base = { kind: "consumer", captureStackTrace: false, attributes: processAttributes(envelope) } as const
    if (upstream === undefined) return base
    const links = [{ span: upstream, attributes: {} }]
    return context.traceContext === "link" ? { ...base, links } : { ...base, parent: upstream, links }
  }
  const settleSpan = (delivery: Delivery<A>, operationName: "ack" | "nack"): Tracer.SpanOptions => ({
    kind: "client",
    captureStackTrace: false,
    attributes: Telemetry.messagingAttributes(broker.system, destination, "settle", {
      ...groupAttribute,
      "messaging.message.id": delivery.envelope.id
    }, operationName)
  })
  // `useSpan`, not `withSpan`: a settlement starts no child span of its own, so its span need not become
  // the parent in the fiber's context (a context copy per settlement saved)
  const withSettleSpans = (delivery: Delivery<A>): Delivery<A> => ({
    ...delivery,
    ack: Effect.useSpan(ackName, settleSpan(delivery, "ack"), () => delivery.ack),
    nack: (nackOptions) => Effect.useSpan(nackName, settleSpan(delivery, "nack"), () => delivery.nack(nackOptions))
  })
  return (delivery) =>
    timed(Effect.withSpan(Effect.tap(next(withSettleSpans(delivery)), annotateOutcome), processName, spanOptions(delivery)))
}
