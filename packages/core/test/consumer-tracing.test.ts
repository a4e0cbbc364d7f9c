import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Option, Tracer } from "effect"
import * as H from "../src/Headers.ts"
import * as Telemetry from "../src/Telemetry.ts"
import { duplicate, handled } from "../src/internal/consumer/outcome.ts"
import type { Step } from "../src/internal/consumer/step.ts"
import { traced } from "../src/internal/consumer/tracing.ts"
import * as Fake from "./helpers/fakeDelivery.ts"

const recordingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const context = (enabled: boolean, traceContext: "parent" | "link" = "parent", metrics = true) => ({
  enabled,
  metrics,
  broker: { system: "memory", telemetryAttributes: () => ({ "messaging.memory.partition": 0 }) },
  destination: "orders",
  group: "billing",
  traceContext
})

const acking: Step<number, never, never> = (delivery) => Effect.as(delivery.ack, handled).pipe(Effect.orDie)
const upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

describe("consumer stage: tracing", () => {
  it.effect("enabled: one process span per delivery with the outcome, and a settle span inside it", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const fake = Fake.decoded(1, { envelope: { id: "m-9", attempt: 2, headers: { [H.traceparent]: upstream } } })
      assert.strictEqual(yield* traced(context(true))(acking)(fake.delivery), handled)
      const process = spans.find((s) => s.name === "process orders")!
      const ack = spans.find((s) => s.name === "ack orders")!
      assert.strictEqual(process.kind, "consumer")
      assert.strictEqual(process.attributes.get("switchyard.outcome"), "handled")
      assert.strictEqual(process.attributes.get("messaging.message.id"), "m-9")
      assert.strictEqual(process.attributes.get("switchyard.message.delivery_attempt"), 2)
      assert.strictEqual(process.attributes.get("messaging.consumer.group.name"), "billing")
      assert.strictEqual(process.attributes.get("messaging.memory.partition"), 0)
      assert.strictEqual(process.traceId, "0af7651916cd43dd8448eb211c80319c", "the publisher's trace was not continued")
      assert.isTrue(Option.isSome(ack.parent) && ack.parent.value.spanId === process.spanId)
      assert.strictEqual(ack.attributes.get("messaging.operation.type"), "settle")
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("what the handler does runs under the process span: its own spans are children of it", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const inHandler: Step<number, never, never> = (delivery) =>
        Effect.andThen(Effect.withSpan(Effect.void, "charge card"), acking(delivery))
      yield* traced(context(true))(inHandler)(Fake.decoded(1, { envelope: { id: "m-3" } }).delivery)
      const process = spans.find((s) => s.name === "process orders")!
      const charge = spans.find((s) => s.name === "charge card")!
      const ack = spans.find((s) => s.name === "ack orders")!
      assert.isTrue(Option.isSome(charge.parent) && charge.parent.value.spanId === process.spanId)
      assert.strictEqual(charge.traceId, process.traceId)
      assert.strictEqual(ack.attributes.get("messaging.message.id"), "m-3")
      assert.strictEqual(ack.attributes.get("messaging.operation.name"), "ack")
      assert.strictEqual(process.status._tag, "Ended")
      // nothing leaks out of the stage: after it, the fiber's parent span is the caller's again
      assert.isTrue(Option.isNone(yield* Effect.serviceOption(Tracer.ParentSpan)))
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("traceContext link: the publisher's span is a link, not the parent", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      yield* traced(context(true, "link"))(() => Effect.succeed(duplicate))(
        Fake.decoded(1, { envelope: { headers: { [H.traceparent]: upstream } } }).delivery
      )
      const process = spans.find((s) => s.name === "process orders")!
      assert.notStrictEqual(process.traceId, "0af7651916cd43dd8448eb211c80319c")
      assert.strictEqual(process.links.length, 1)
      assert.strictEqual(process.attributes.get("switchyard.outcome"), "duplicate")
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("disabled: no span at all, and the delivery's own settlements are used as they are", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const fake = Fake.decoded(1)
      const seen: Array<unknown> = []
      yield* traced(context(false))((delivery) => Effect.sync(() => (seen.push(delivery.ack), handled)))(fake.delivery)
      assert.strictEqual(seen[0], fake.delivery.ack)
      assert.strictEqual(spans.length, 0)
    }).pipe(Effect.withTracer(tracer))
  })

  it.effect("per-message metrics: each handling is timed into the histogram; off (with tracing off) the stage is the next step itself", () =>
    Effect.gen(function*() {
      const step: Step<number, never, never> = () => Effect.succeed(handled)
      const count = Effect.map(Metric.value(Telemetry.handlingDuration), (state) => state.count)
      const before = yield* count
      yield* traced(context(false))(step)(Fake.decoded(1).delivery)
      yield* traced(context(true))(step)(Fake.decoded(2).delivery)
      assert.strictEqual((yield* count) - before, 2)
      assert.strictEqual(traced(context(false, "parent", false))(step), step)
      yield* traced(context(true, "parent", false))(step)(Fake.decoded(3).delivery)
      assert.strictEqual((yield* count) - before, 2, "nothing timed with the metrics off")
    }))
})
