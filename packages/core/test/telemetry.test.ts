/**
 * W3C trace context parsing and the OpenTelemetry messaging span conventions (names, kinds, attributes)
 * of the publisher and the consumer, with a recording tracer on the in-memory broker.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker, Consumer, Envelope, Headers, MemoryBroker, Publisher, Switchyard, Telemetry, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"
import { Effect, Fiber, Option, References, Schema, Tracer } from "effect"
import * as fc from "fast-check"

const hex = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`))
const nonZero = (length: number) => hex(length).filter((s) => /[1-9a-f]/.test(s))
const valid = { version: "00", traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", flags: "01" }
const header = (p: { version: string; traceId: string; spanId: string; flags: string }) =>
  `${p.version}-${p.traceId}-${p.spanId}-${p.flags}`

describe("Telemetry.parseTraceparent (W3C Trace Context)", () => {
  it("parses every valid version-00 value: ids as given, sampled from the flags' low bit", () => {
    fc.assert(fc.property(nonZero(32), nonZero(16), hex(2), (traceId, spanId, flags) => {
      const span = Telemetry.parseTraceparent(header({ version: "00", traceId, spanId, flags }))
      assert.isDefined(span)
      assert.strictEqual(span?.traceId, traceId)
      assert.strictEqual(span?.spanId, spanId)
      assert.strictEqual(span?.sampled, (Number.parseInt(flags, 16) & 1) === 1)
    }))
  })

  it("ignores an all-zero trace id or parent id", () => {
    assert.isUndefined(Telemetry.parseTraceparent(header({ ...valid, traceId: "0".repeat(32) })))
    assert.isUndefined(Telemetry.parseTraceparent(header({ ...valid, spanId: "0".repeat(16) })))
    assert.isUndefined(Telemetry.parseTraceparent("00-00000000000000000000000000000000-0000000000000000-00"))
  })

  it("ignores uppercase hex anywhere", () => {
    fc.assert(fc.property(nonZero(32), nonZero(16), fc.constantFrom("traceId", "spanId", "flags"), (traceId, spanId, field) => {
      const parts = { version: "00", traceId: `${traceId.slice(0, 31)}a`, spanId: `${spanId.slice(0, 15)}b`, flags: "0a" }
      const upper = { ...parts, [field]: parts[field as "traceId"].toUpperCase() }
      assert.isUndefined(Telemetry.parseTraceparent(header(upper)))
    }))
  })

  it("ignores version ff, wrong lengths, extra fields on version 00 and non-hex characters", () => {
    const invalid = [
      header({ ...valid, version: "ff" }),
      header({ ...valid, traceId: valid.traceId.slice(1) }),
      header({ ...valid, traceId: `${valid.traceId}0` }),
      header({ ...valid, spanId: valid.spanId.slice(1) }),
      header({ ...valid, spanId: `${valid.spanId}0` }),
      header({ ...valid, flags: "1" }),
      header({ ...valid, flags: "001" }),
      header({ ...valid, version: "0" }),
      `${header(valid)}-extra`,
      header({ ...valid, traceId: `${valid.traceId.slice(0, 31)}g` }),
      header(valid).replaceAll("-", "_"),
      ""
    ]
    for (const value of invalid) assert.isUndefined(Telemetry.parseTraceparent(value), value)
  })

  it("accepts a later version with extra fields (parsed as version 00), and surrounding whitespace", () => {
    assert.strictEqual(Telemetry.parseTraceparent(`${header({ ...valid, version: "01" })}-what-comes-next`)?.spanId, valid.spanId)
    assert.strictEqual(Telemetry.parseTraceparent(` ${header(valid)} `)?.traceId, valid.traceId)
  })

  it("formatTraceparent writes what parseTraceparent reads", () => {
    fc.assert(fc.property(nonZero(32), nonZero(16), fc.boolean(), (traceId, spanId, sampled) => {
      const value = Telemetry.formatTraceparent(Tracer.externalSpan({ traceId, spanId, sampled }))
      assert.deepInclude(Telemetry.parseTraceparent(value), { traceId, spanId, sampled })
    }))
  })
})

const Item = Schema.Struct({ n: Schema.Number })

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

/** The in-memory broker with broker-specific telemetry attributes, as an adapter provides them. */
const brokerWithAttributes = MemoryBroker.layerWrapped((broker) => ({
  ...broker,
  telemetryAttributes: (envelope) => ({
    "messaging.destination.partition.id": String(envelope.coordinates.partition ?? ""),
    "messaging.memory.offset": Number(envelope.coordinates.offset ?? -1)
  })
}), { partitions: 1 })

const stack = Switchyard.on(brokerWithAttributes)

const attrs = (span: Tracer.NativeSpan | undefined) => Object.fromEntries(span?.attributes ?? [])

describe("messaging spans (OpenTelemetry semantic conventions)", () => {
  it.effect("send spans: `send <destination>`, producer kind, operation type and name; message attributes only on one message, batch count only on batches", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("orders", Item)
      const receipt = yield* Publisher.publish(topic, { n: 1 }, { correlationId: "conv-1" })
      yield* Publisher.publishAll(topic, [{ n: 2 }, { n: 3 }])
      yield* Publisher.publishAll(topic, [{ n: 4 }])
      const sends = spans.filter((s) => s.name === "send orders")
      assert.strictEqual(sends.length, 3)
      const [single, batch, one] = sends
      for (const span of sends) {
        assert.strictEqual(span.kind, "producer")
        assert.deepInclude(attrs(span), {
          "messaging.system": "memory",
          "messaging.destination.name": "orders",
          "messaging.operation.type": "send",
          "messaging.operation.name": "send"
        })
      }
      assert.deepInclude(attrs(single), {
        "messaging.message.id": receipt.id,
        "messaging.message.conversation_id": "conv-1",
        "messaging.message.body.size": new TextEncoder().encode(`{"n":1}`).length
      })
      assert.notProperty(attrs(single), "messaging.batch.message_count")
      assert.strictEqual(attrs(batch)["messaging.batch.message_count"], 2)
      assert.notProperty(attrs(batch), "messaging.message.id")
      assert.notProperty(attrs(one), "messaging.batch.message_count")
      assert.notProperty(attrs(one), "messaging.message.conversation_id")
    }).pipe(Effect.provide(stack), Effect.withTracer(tracer))
  })

  it.effect("process spans: `process <destination>`, consumer kind, parent and link to the send span, message, group and broker attributes; ack settle span inside", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("orders", Item)
      const receipt = yield* Publisher.publish(topic, { n: 1 }, { correlationId: "conv-9" })
      const send = spans.find((s) => s.name === "send orders")!
      const fiber = yield* Consumer.run(topic, () => Effect.void, { group: "billing" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => spans.some((s) => s.name === "ack orders")), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      const process = spans.find((s) => s.name === "process orders")
      assert.isDefined(process)
      assert.strictEqual(process?.kind, "consumer")
      assert.strictEqual(Option.getOrUndefined(process!.parent)?.spanId, send.spanId)
      assert.strictEqual(process?.links[0]?.span.spanId, send.spanId)
      assert.deepInclude(attrs(process), {
        "messaging.system": "memory",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "billing",
        "messaging.message.id": receipt.id,
        "messaging.message.conversation_id": "conv-9",
        "messaging.message.body.size": 7,
        "messaging.destination.partition.id": "0",
        "messaging.memory.offset": 0,
        "switchyard.outcome": "handled"
      })
      assert.notProperty(attrs(process), "messaging.batch.message_count")
      const ack = spans.find((s) => s.name === "ack orders")
      assert.strictEqual(ack?.kind, "client")
      assert.strictEqual(Option.getOrUndefined(ack!.parent)?.spanId, process?.spanId)
      assert.deepInclude(attrs(ack), {
        "messaging.operation.type": "settle",
        "messaging.operation.name": "ack",
        "messaging.consumer.group.name": "billing",
        "messaging.message.id": receipt.id
      })
    }).pipe(Effect.provide(stack), Effect.withTracer(tracer))
  })

  it.effect("a message that already carries a creation context keeps it; the send span links to it", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("bridged", Item)
      const upstream = header(valid)
      yield* Publisher.publishMessages(topic, [{ value: { n: 1 }, options: { headers: { [Headers.traceparent]: upstream } } }, { value: { n: 2 } }])
      const send = spans.find((s) => s.name === "send bridged")!
      const inspect = yield* MemoryBroker.MemoryBroker
      const published = yield* inspect.published("bridged")
      const byN = new Map(published.map((e) => [JSON.parse(new TextDecoder().decode(e.payload)).n as number, e]))
      assert.strictEqual(byN.get(1)?.headers[Headers.traceparent], upstream)
      assert.strictEqual(byN.get(2)?.headers[Headers.traceparent], Telemetry.formatTraceparent(send))
      assert.deepStrictEqual(send.links.map((l) => l.span.spanId), [valid.spanId])
    }).pipe(Effect.provide(stack), Effect.withTracer(tracer))
  })

  it.effect("without a tracing backend (Effect's native tracer) no span is made and no traceparent written; Telemetry.tracing says why", () =>
    Effect.gen(function*() {
      assert.isFalse(yield* Telemetry.tracing)
      const { tracer } = recordingTracer()
      assert.isTrue(yield* Telemetry.tracing.pipe(Effect.withTracer(tracer)))
      assert.isFalse(yield* Telemetry.tracing.pipe(Effect.withTracer(tracer), Effect.provideService(References.TracerEnabled, false)))
      const topic = Topic.make("untraced", Item)
      yield* Publisher.publishAll(topic, [{ n: 1 }, { n: 2 }])
      const published = yield* (yield* MemoryBroker.MemoryBroker).published("untraced")
      assert.strictEqual(published.length, 2)
      for (const envelope of published) assert.notProperty(envelope.headers, Headers.traceparent)
      const seen: Array<string | undefined> = []
      const fiber = yield* Consumer.run(topic, () =>
        Effect.map(Effect.option(Effect.currentSpan), (span) => {
          seen.push(Option.getOrUndefined(span)?.name)
        }), { group: "g" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => seen.length === 2), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(seen, [undefined, undefined])
    }).pipe(Effect.provide(stack)))

  it.effect("a nack is a `nack <destination>` settle span", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("jobs", Item)
      yield* Publisher.publish(topic, { n: 1 })
      const fiber = yield* Consumer.run(topic, () => Effect.fail("no"), { group: "g", deadLetter: false }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => spans.some((s) => s.name === "nack jobs")), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      const nack = spans.find((s) => s.name === "nack jobs")
      assert.deepInclude(attrs(nack), { "messaging.operation.type": "settle", "messaging.operation.name": "nack" })
      assert.strictEqual(attrs(spans.find((s) => s.name === "process jobs"))["switchyard.outcome"], "nacked")
    }).pipe(Effect.provide(stack), Effect.withTracer(tracer))
  })

  it.effect("a foreign all-zero traceparent is not continued: the process span starts its own trace", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("foreign", Item)
      const zero = "00-00000000000000000000000000000000-0000000000000000-01"
      yield* Broker.Broker.use((broker) =>
        broker.publish("foreign", [Envelope.outgoing(new TextEncoder().encode(`{"n":1}`), { headers: { [Headers.traceparent]: zero } })])
      )
      const fiber = yield* Consumer.run(topic, () => Effect.void, { group: "g" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => spans.some((s) => s.name === "process foreign")), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      const process = spans.find((s) => s.name === "process foreign")!
      assert.isTrue(Option.isNone(process.parent))
      assert.strictEqual(process.links.length, 0)
      assert.notStrictEqual(process.traceId, "00000000000000000000000000000000")
    }).pipe(Effect.provide(stack), Effect.withTracer(tracer))
  })

  it.effect("with tracing disabled nothing is recorded and no traceparent is written", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const topic = Topic.make("quiet", Item)
      yield* Publisher.publish(topic, { n: 1 }).pipe(Effect.withSpan("outer"))
      const handled: Array<number> = []
      const fiber = yield* Consumer.run(topic, ({ n }) => Effect.sync(() => handled.push(n)), { group: "g" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => handled.length === 1), { within: "1 second" }))
      yield* Fiber.interrupt(fiber)
      const inspect = yield* MemoryBroker.MemoryBroker
      const [published] = yield* inspect.published("quiet")
      assert.isUndefined(published?.headers[Headers.traceparent])
      assert.strictEqual(spans.length, 0)
    }).pipe(Effect.provide(stack), Effect.withTracer(tracer), Effect.provideService(References.TracerEnabled, false))
  })
})
