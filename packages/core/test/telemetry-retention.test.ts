import { assert, describe, it } from "@effect/vitest"
import { Consumer, Headers, MemoryBroker, Publisher, Switchyard, Telemetry, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"
import { Effect, Fiber, Metric, Option, Schedule, Schema, Tracer } from "effect"

const Item = Schema.Struct({ n: Schema.Number })
const retryTwice = Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 2 }))

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

describe("telemetry", () => {
  it.effect("the publisher injects traceparent; the consumer span continues the publisher's trace as its parent", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("traced", Item)
      const receipt = yield* Publisher.publish(topic, { n: 1 }).pipe(Effect.withSpan("checkout"))
      const inspect = yield* MemoryBroker.MemoryBroker
      const [published] = yield* inspect.published("traced")
      const header = published?.headers[Headers.traceparent]
      assert.match(header ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      const publishSpan = spans.find((s) => s.name === "send traced")!
      assert.strictEqual(header, Telemetry.formatTraceparent(publishSpan))
      assert.strictEqual(publishSpan.kind, "producer")
      assert.strictEqual(publishSpan.attributes.get("messaging.destination.name"), "traced")
      const fiber = yield* Consumer.run(topic, () => Effect.void, { group: "g" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => spans.some((s) => s.name === "process traced")), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      const processSpan = spans.find((s) => s.name === "process traced")!
      assert.strictEqual(processSpan.kind, "consumer")
      assert.strictEqual(processSpan.traceId, publishSpan.traceId)
      assert.strictEqual(Option.getOrUndefined(processSpan.parent)?.spanId, publishSpan.spanId)
      assert.strictEqual(processSpan.attributes.get("messaging.message.id"), receipt.id)
      assert.strictEqual(processSpan.attributes.get("messaging.consumer.group.name"), "g")
    }).pipe(Effect.provide(Switchyard.layerMemory()), Effect.withTracer(tracer))
  })

  it.effect("with traceContext \"link\" the consumer span starts a new trace linked to the publisher's span", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const topic = Topic.make("linked", Item)
      yield* Publisher.publish(topic, { n: 1 }).pipe(Effect.withTracer(tracer))
      const publishSpan = spans.find((s) => s.name === "send linked")!
      const fiber = yield* Consumer.run(topic, () => Effect.void, { group: "g", traceContext: "link" }).pipe(
        Effect.withTracer(tracer),
        Effect.forkChild
      )
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => spans.some((s) => s.name === "process linked")), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      const processSpan = spans.find((s) => s.name === "process linked")!
      assert.notStrictEqual(processSpan.traceId, publishSpan.traceId)
      assert.strictEqual(processSpan.links[0]?.span.spanId, publishSpan.spanId)
    }).pipe(Effect.provide(Switchyard.layerMemory())))

  it.effect("metrics count published, consumed, retried and dead-lettered messages and time the handling", () =>
    Effect.gen(function*() {
      const topic = Topic.make("metered", Item)
      const before = {
        published: (yield* Metric.value(Telemetry.published)).count,
        consumed: (yield* Metric.value(Telemetry.consumed)).count,
        retried: (yield* Metric.value(Telemetry.retried)).count,
        dead: (yield* Metric.value(Telemetry.deadLettered)).count,
        timed: (yield* Metric.value(Telemetry.handlingDuration)).count
      }
      yield* Publisher.publishAll(topic, [{ n: 1 }, { n: 2 }, { n: 3 }])
      const fiber = yield* Consumer.run(topic, ({ n }) => (n === 2 ? Effect.fail("nope") : Effect.void), {
        group: "g",
        retry: retryTwice
      }).pipe(Effect.forkChild)
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("metered", "g"), (lag) => lag === 0), { within: "5 seconds" }))
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* Metric.value(Telemetry.published)).count - before.published, 3)
      assert.strictEqual((yield* Metric.value(Telemetry.consumed)).count - before.consumed, 3)
      assert.strictEqual((yield* Metric.value(Telemetry.retried)).count - before.retried, 2)
      assert.strictEqual((yield* Metric.value(Telemetry.deadLettered)).count - before.dead, 1)
      assert.strictEqual((yield* Metric.value(Telemetry.handlingDuration)).count - before.timed, 3)
    }).pipe(Effect.provide(Switchyard.layerMemory())))
})


describe("in-memory broker retention", () => {
  it.effect("keeps at most maxMessagesPerPartition records; a lagging group skips what was dropped", () =>
    Effect.gen(function*() {
      const topic = Topic.make("bounded", Item)
      const inspect = yield* MemoryBroker.MemoryBroker
      const seen: Array<number> = []
      // Register the group first (startFrom earliest), then let it fall behind.
      const first = yield* Consumer.run(topic, () => Effect.void, { group: "late" }).pipe(Effect.forkChild)
      yield* TestKit.settle()
      yield* Fiber.interrupt(first)
      yield* Publisher.publishAll(topic, Array.from({ length: 10 }, (_, n) => ({ n })))
      assert.strictEqual((yield* inspect.published("bounded")).length, 3)
      assert.strictEqual(yield* inspect.publishedCount("bounded"), 10)
      const fiber = yield* Consumer.run(topic, ({ n }) => Effect.sync(() => seen.push(n)), { group: "late" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => seen.length >= 3), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(seen, [7, 8, 9])
      assert.strictEqual(yield* inspect.lag("bounded", "late"), 0)
    }).pipe(Effect.provide(Switchyard.layerMemory({ partitions: 1, maxMessagesPerPartition: 3 }))))

  it.effect("drops records older than maxAge (by the Clock)", () =>
    Effect.gen(function*() {
      const topic = Topic.make("aging", Item)
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publishAll(topic, [{ n: 1 }, { n: 2 }])
      yield* TestKit.advance("2 minutes", "1 second")
      yield* Publisher.publish(topic, { n: 3 })
      const left = yield* inspect.published("aging")
      assert.deepStrictEqual(left.map((e) => JSON.parse(new TextDecoder().decode(e.payload)).n), [3])
    }).pipe(Effect.provide(Switchyard.layerMemory({ partitions: 1, maxAge: "1 minute" }))))
})
