/**
 * Runtime behaviour under TestClock (installed by `it.effect`): Router dispatch and unknown event types, `Publisher.sink` batching by
 * size and by time, and graceful drain of the consumer on interruption.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Duration, Effect, Exit, Fiber, Layer, Queue, References, Schema, Scope, Stream } from "effect"
import { Consumer, Headers as H, MemoryBroker, Publisher, Router, Switchyard, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"

/** A publish call seen by the broker. */
interface PublishCall {
  readonly destination: string
  readonly size: number
  readonly at: number
}

/** The in-memory stack with the broker's `publish` calls recorded, and quiet logs. */
const recording = (calls: Array<PublishCall>) =>
  Switchyard.on(MemoryBroker.layerWrapped((broker) => ({
    ...broker,
    publish: (destination, messages) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        calls.push({ destination, size: messages.length, at })
        return broker.publish(destination, messages)
      })
  }), { partitions: 4 }))

const withStack = (calls: Array<PublishCall> = []) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(recording(calls)), Effect.provideService(References.MinimumLogLevel, "Error"))

// --- Router ---------------------------------------------------------------------------------------

const OrderPlaced = Schema.TaggedStruct("OrderPlaced", { orderId: Schema.String, total: Schema.Number })
const OrderCancelled = Schema.TaggedStruct("OrderCancelled", { orderId: Schema.String, reason: Schema.String })
const OrderEvent = Schema.Union([OrderPlaced, OrderCancelled])
/** A wider schema sharing the destination, to publish events the router does not know. */
const AnyEvent = Schema.Struct({ _tag: Schema.String, orderId: Schema.String })

const makeRouter = (log: Array<string>) =>
  Router.make("orders", OrderEvent, {
    OrderPlaced: (e) => Effect.sync(() => log.push(`placed:${e.orderId}:${e.total}`)),
    OrderCancelled: (e) => Effect.sync(() => log.push(`cancelled:${e.orderId}:${e.reason}`))
  }, { key: (e) => e.orderId })

/** Runs a router consumer until `count` deliveries reached an outcome (handled, dead-lettered, or acked). */
const runRouter = (
  log: Array<string>,
  publish: Effect.Effect<unknown, unknown, Publisher.Publisher>,
  options: Consumer.Options<never>
) =>
  Effect.gen(function*() {
    const inspect = yield* MemoryBroker.MemoryBroker
    const router = makeRouter(log)
    yield* publish
    const consumer = yield* Consumer.run(router.topic, router.handler, { group: "audit", ...options }).pipe(Effect.forkChild)
    const drained = yield* TestKit.advanceUntil(
      Effect.map(inspect.lag("orders", "audit"), (lag) => lag === 0),
      { within: "5 seconds" }
    )
    assert.isTrue(drained, "the group still has lag")
    yield* Fiber.interrupt(consumer)
    return yield* inspect.deadLetters("orders")
  })

const unknownEvents = Topic.make("orders", AnyEvent, { key: (e) => e.orderId })

describe("Router", () => {
  it.effect("dispatches each event to the handler of its tag, in per-key order", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const router = makeRouter([])
      const dead = yield* runRouter(
        log,
        Publisher.publishAll<typeof OrderEvent.Type>(router.topic, [
          { _tag: "OrderPlaced", orderId: "o1", total: 10 },
          { _tag: "OrderPlaced", orderId: "o2", total: 20 },
          { _tag: "OrderCancelled", orderId: "o1", reason: "changed mind" }
        ]),
        {}
      )
      assert.deepStrictEqual(dead, [])
      assert.deepStrictEqual([...log].sort(), ["cancelled:o1:changed mind", "placed:o1:10", "placed:o2:20"])
      // o1 was placed before it was cancelled.
      assert.isBelow(log.indexOf("placed:o1:10"), log.indexOf("cancelled:o1:changed mind"))
    }).pipe(withStack()))

  it.effect("onUnknownType \"ignore\": an unknown _tag is acked, not dead-lettered, and no handler runs", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const router = makeRouter([])
      const dead = yield* runRouter(
        log,
        Effect.gen(function*() {
          yield* Publisher.publish(unknownEvents, { _tag: "OrderShipped", orderId: "o1" })
          yield* Publisher.publish(router.topic, { _tag: "OrderPlaced", orderId: "o1", total: 5 })
        }),
        { decode: { onUnknownType: "ignore" } }
      )
      assert.deepStrictEqual(dead, [])
      assert.deepStrictEqual(log, ["placed:o1:5"])
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.strictEqual(yield* inspect.lag("orders", "audit"), 0)
      assert.strictEqual(yield* inspect.publishedCount("orders.dlq"), 0)
    }).pipe(withStack()))

  it.effect("by default an unknown _tag is dead-lettered with error tag UnknownEventType", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const router = makeRouter([])
      const dead = yield* runRouter(
        log,
        Effect.gen(function*() {
          yield* Publisher.publish(unknownEvents, { _tag: "OrderShipped", orderId: "o1" }, { id: "shipped-1" })
          yield* Publisher.publish(router.topic, { _tag: "OrderPlaced", orderId: "o1", total: 5 })
        }),
        {}
      )
      assert.deepStrictEqual(log, ["placed:o1:5"])
      assert.strictEqual(dead.length, 1)
      const headers = dead[0]!.headers
      assert.strictEqual(headers[H.deadLetterErrorTag], "UnknownEventType")
      assert.strictEqual(headers[H.deadLetterOriginalId], "shipped-1")
      assert.match(headers[H.deadLetterReason]!, /OrderShipped/)
      assert.strictEqual(headers[H.deadLetterOriginGroup], "audit")
      // The original payload is kept.
      assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(dead[0]!.payload)), { _tag: "OrderShipped", orderId: "o1" })
    }).pipe(withStack()))

  it.effect("a known _tag with a malformed body is a DecodeError, dead-lettered even with onUnknownType \"ignore\"", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const dead = yield* runRouter(
        log,
        Publisher.publish(unknownEvents, { _tag: "OrderPlaced", orderId: "o9" }, { id: "bad-1" }),
        { decode: { onUnknownType: "ignore" } }
      )
      assert.deepStrictEqual(log, [])
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.headers[H.deadLetterErrorTag], "DecodeError")
      assert.strictEqual(dead[0]!.headers[H.deadLetterOriginalId], "bad-1")
    }).pipe(withStack()))
})

// --- Publisher.sink --------------------------------------------------------------------------------

const ticks = Topic.make("ticks", Schema.Number)

describe("Publisher.sink", () => {
  it.effect("1500 values with batchSize 500 are published as 3 batches of 500, in order", () => {
    const calls: Array<PublishCall> = []
    return Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const fiber = yield* Stream.range(1, 1500).pipe(
        Stream.run(Publisher.sink(ticks, { batchSize: 500 })),
        Effect.forkChild
      )
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => fiber.pollUnsafe() !== undefined), { within: "1 second" }))
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(calls.filter((c) => c.destination === "ticks").map((c) => c.size), [500, 500, 500])
      assert.strictEqual(yield* inspect.publishedCount("ticks"), 1500)
      const values = (yield* inspect.published("ticks")).map((e) => Number(new TextDecoder().decode(e.payload)))
      assert.deepStrictEqual([...values].sort((a, b) => a - b), Array.from({ length: 1500 }, (_, i) => i + 1))
    }).pipe(withStack(calls))
  })

  it.effect("1501 values: the remainder is flushed when the stream ends", () => {
    const calls: Array<PublishCall> = []
    return Effect.gen(function*() {
      const fiber = yield* Stream.range(1, 1501).pipe(
        Stream.run(Publisher.sink(ticks, { batchSize: 500 })),
        Effect.forkChild
      )
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => fiber.pollUnsafe() !== undefined), { within: "1 second" }))
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(calls.map((c) => c.size), [500, 500, 500, 1])
    }).pipe(withStack(calls))
  })

  it.effect("an array streamed as one chunk (Stream.fromIterable) is published in batches of batchSize, in order", () => {
    const calls: Array<PublishCall> = []
    return Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const values = Array.from({ length: 20_001 }, (_, i) => i + 1)
      const fiber = yield* Stream.fromIterable(values).pipe(
        Stream.run(Publisher.sink(ticks, { batchSize: 500 })),
        Effect.forkChild
      )
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => fiber.pollUnsafe() !== undefined), { within: "1 second" }))
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(calls.map((c) => c.size), [...Array.from({ length: 40 }, () => 500), 1])
      const published = (yield* inspect.published("ticks")).map((e) => Number(new TextDecoder().decode(e.payload)))
      assert.deepStrictEqual([...published].sort((a, b) => a - b), values)
    }).pipe(withStack(calls))
  })

  it.effect("a slow trickle is flushed after linger, not before", () => {
    const calls: Array<PublishCall> = []
    return Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number, Cause.Done>()
      const fiber = yield* Stream.fromQueue(queue).pipe(
        Stream.run(Publisher.sink(ticks, { batchSize: 500, linger: "100 millis" })),
        Effect.forkChild
      )
      const t0 = yield* Clock.currentTimeMillis
      yield* Queue.offerAll(queue, [1, 2, 3])
      yield* TestKit.advance("90 millis")
      assert.deepStrictEqual(calls, [], "flushed before linger elapsed")
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => calls.length === 1), { within: "50 millis" }))
      assert.strictEqual(calls[0]!.size, 3)
      assert.isAtLeast(calls[0]!.at - t0, 100)
      assert.isAtMost(calls[0]!.at - t0, 110)
      // A second trickle gets its own window.
      yield* Queue.offerAll(queue, [4, 5])
      yield* TestKit.advance("50 millis")
      assert.strictEqual(calls.length, 1)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => calls.length === 2), { within: "100 millis" }))
      assert.strictEqual(calls[1]!.size, 2)
      yield* Queue.end(queue)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => fiber.pollUnsafe() !== undefined), { within: "1 second" }))
      assert.deepStrictEqual(calls.map((c) => c.size), [3, 2])
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.strictEqual(yield* inspect.publishedCount("ticks"), 5)
    }).pipe(withStack(calls))
  })
})

// --- Graceful drain --------------------------------------------------------------------------------

const Work = Schema.Struct({ id: Schema.String, millis: Schema.Number })
const work = Topic.make("work", Work, { key: (w) => w.id })

/** Interrupts a consumer fiber (which drains), letting virtual time pass; returns the virtual time it took. */
const interruptDraining = (fiber: Fiber.Fiber<unknown, unknown>, within: Duration.Input) =>
  Effect.gen(function*() {
    const t0 = yield* Clock.currentTimeMillis
    const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber))
    let stoppedAt: number | undefined
    const stopped = yield* TestKit.advanceUntil(
      Effect.gen(function*() {
        if (stoppedAt === undefined && stopping.pollUnsafe() !== undefined) stoppedAt = yield* Clock.currentTimeMillis
        return stoppedAt !== undefined
      }),
      { within, step: "10 millis" }
    )
    assert.isTrue(stopped, `consumer did not stop within ${Duration.format(Duration.fromInputUnsafe(within))}`)
    return stoppedAt! - t0
  })

describe("graceful drain", () => {
  it.effect("in-flight handlers finish within drainTimeout and are acked; nothing new is taken meanwhile", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const started: Array<string> = []
      const completed: Array<string> = []
      yield* Publisher.publishAll(work, [{ id: "a", millis: 500 }, { id: "b", millis: 300 }, { id: "c", millis: 400 }])
      const consumer = yield* Consumer.run(
        work,
        (w) =>
          Effect.gen(function*() {
            started.push(w.id)
            yield* Effect.sleep(`${w.millis} millis`)
            completed.push(w.id)
          }),
        { group: "g", concurrency: 3, ordering: "none", drainTimeout: "2 seconds" }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => started.length === 3), { within: "1 second" }))
      assert.deepStrictEqual(completed, [])
      const took = yield* interruptDraining(consumer, "3 seconds")
      assert.deepStrictEqual([...completed].sort(), ["a", "b", "c"])
      // The drain ends when the slowest handler is done (500ms), not at the drain timeout.
      assert.isAtLeast(took, 490)
      assert.isAtMost(took, 600)
      assert.strictEqual(yield* inspect.lag("work", "g"), 0)
      assert.strictEqual(yield* inspect.inFlight("work", "g"), 0)
      assert.deepStrictEqual(yield* inspect.deadLetters("work"), [])
    }).pipe(withStack()))

  it.effect("messages published during a drain are left for the next consumer", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const started: Array<string> = []
      const completed: Array<string> = []
      const handler = (w: typeof Work.Type) =>
        Effect.gen(function*() {
          started.push(w.id)
          yield* Effect.sleep(`${w.millis} millis`)
          completed.push(w.id)
        })
      yield* Publisher.publish(work, { id: "first", millis: 300 })
      const consumer = yield* Consumer.run(work, handler, { group: "g", drainTimeout: "1 second" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => started.length === 1), { within: "1 second" }))
      const stopping = yield* Effect.forkChild(Fiber.interrupt(consumer))
      yield* TestKit.advance("50 millis")
      yield* Publisher.publish(work, { id: "late", millis: 10 })
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => stopping.pollUnsafe() !== undefined), { within: "2 seconds" }))
      assert.deepStrictEqual(started, ["first"])
      assert.deepStrictEqual(completed, ["first"])
      assert.strictEqual(yield* inspect.lag("work", "g"), 1)
      // The next member of the group picks it up.
      const next = yield* Consumer.run(work, handler, { group: "g" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => completed.length === 2), { within: "1 second" }))
      assert.deepStrictEqual(completed, ["first", "late"])
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("work", "g"), (l) => l === 0), { within: "1 second" }))
      yield* Fiber.interrupt(next)
    }).pipe(withStack()))

  it.effect("a handler longer than drainTimeout is interrupted, NOT acked, and redelivered to the next consumer", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const attempts: Array<number> = []
      let interrupted = 0
      let completedSlow = 0
      yield* Publisher.publish(work, { id: "slow", millis: 5000 }, { id: "slow-1" })
      const consumer = yield* Consumer.run(
        work,
        (w, envelope) =>
          Effect.gen(function*() {
            attempts.push(envelope.attempt)
            yield* Effect.sleep(`${w.millis} millis`)
            completedSlow++
          }).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted++))),
        { group: "g", drainTimeout: "1 second" }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => attempts.length === 1), { within: "1 second" }))
      const took = yield* interruptDraining(consumer, "3 seconds")
      // Stopped at the drain timeout, not when the handler would have finished.
      assert.isAtLeast(took, 990)
      assert.isAtMost(took, 1100)
      assert.strictEqual(interrupted, 1)
      assert.strictEqual(completedSlow, 0)
      assert.strictEqual(yield* inspect.lag("work", "g"), 1, "the interrupted message must not be acked")
      assert.strictEqual(yield* inspect.inFlight("work", "g"), 0)
      assert.deepStrictEqual(yield* inspect.deadLetters("work"), [], "an interrupted handler is not a failure")

      // The next consumer of the group gets it again, as a redelivery.
      const redelivered: Array<{ id: string; attempt: number }> = []
      const next = yield* Consumer.run(
        work,
        (_, envelope) => Effect.sync(() => redelivered.push({ id: envelope.id, attempt: envelope.attempt })),
        { group: "g" }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => redelivered.length === 1), { within: "1 second" }))
      assert.deepStrictEqual(redelivered, [{ id: "slow-1", attempt: 2 }])
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("work", "g"), (l) => l === 0), { within: "1 second" }))
      yield* TestKit.advance("6 seconds", "100 millis")
      assert.strictEqual(completedSlow, 0, "the interrupted handler never resumed")
      yield* Fiber.interrupt(next)
    }).pipe(withStack()))

  it.effect("with concurrency, fast handlers are acked during the drain while a slow one is cut off", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const completed: Array<string> = []
      let started = 0
      yield* Publisher.publishAll(work, [
        { id: "fast-1", millis: 200 },
        { id: "fast-2", millis: 700 },
        { id: "slow", millis: 10_000 }
      ])
      const consumer = yield* Consumer.run(
        work,
        (w) =>
          Effect.gen(function*() {
            started++
            yield* Effect.sleep(`${w.millis} millis`)
            completed.push(w.id)
          }),
        { group: "g", concurrency: 3, ordering: "none", drainTimeout: "1 second" }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => started === 3), { within: "1 second" }))
      yield* interruptDraining(consumer, "3 seconds")
      assert.deepStrictEqual([...completed].sort(), ["fast-1", "fast-2"])
      assert.strictEqual(yield* inspect.lag("work", "g"), 1, "only the slow message is unacknowledged")
      assert.strictEqual(yield* inspect.inFlight("work", "g"), 0)
      assert.deepStrictEqual(yield* inspect.deadLetters("work"), [])
    }).pipe(withStack()))

  for (const via of ["Consumer.start", "Consumer.layer"] as const) {
    it.effect(`${via}: closing the scope drains in-flight handlers, which are acked`, () =>
      Effect.gen(function*() {
        const inspect = yield* MemoryBroker.MemoryBroker
        const started: Array<string> = []
        const completed: Array<string> = []
        yield* Publisher.publishAll(work, [{ id: "x", millis: 400 }, { id: "y", millis: 250 }])
        const handler = (w: typeof Work.Type) =>
          Effect.gen(function*() {
            started.push(w.id)
            yield* Effect.sleep(`${w.millis} millis`)
            completed.push(w.id)
          })
        const options: Consumer.Options<never> = { group: "g", concurrency: 2, ordering: "none", drainTimeout: "5 seconds" }
        const scope = yield* Scope.make()
        if (via === "Consumer.start") {
          yield* Consumer.start(work, handler, options).pipe(Scope.provide(scope))
        } else {
          yield* Layer.buildWithScope(Consumer.layer(work, handler, options), scope)
        }
        assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => started.length === 2), { within: "1 second" }))
        const t0 = yield* Clock.currentTimeMillis
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        assert.isTrue(
          yield* TestKit.advanceUntil(Effect.sync(() => closing.pollUnsafe() !== undefined), { within: "6 seconds" })
        )
        assert.isAtMost((yield* Clock.currentTimeMillis) - t0, 500, "the drain waited for the handlers, not the timeout")
        assert.deepStrictEqual([...completed].sort(), ["x", "y"])
        assert.strictEqual(yield* inspect.lag("work", "g"), 0)
      }).pipe(withStack()))
  }

  it.effect("prefetched messages and a drain timeout: whatever was not completed is unacked and handled by the next consumer", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const firstRun: Array<string> = []
      const secondRun: Array<string> = []
      let log = firstRun
      let started = 0
      yield* Publisher.publishMessages(
        work,
        Array.from({ length: 5 }, (_, i) => ({ value: { id: `m${i}`, millis: 100 }, options: { key: "one-key" } }))
      )
      const handler = (w: typeof Work.Type) =>
        Effect.gen(function*() {
          started++
          yield* Effect.sleep(`${w.millis} millis`)
          log.push(w.id)
        })
      // All 5 are prefetched by the first consumer (one key, so one lane, concurrency 1).
      const first = yield* Consumer.run(work, handler, { group: "g", drainTimeout: "250 millis" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => started === 1), { within: "1 second" }))
      yield* TestKit.advance("50 millis")
      yield* interruptDraining(first, "1 second")
      // The handler in flight at the stop finished and was acked; the rest is unacknowledged.
      assert.include(firstRun, "m0")
      assert.strictEqual(yield* inspect.lag("work", "g"), 5 - firstRun.length)
      assert.strictEqual(yield* inspect.inFlight("work", "g"), 0)
      log = secondRun
      const second = yield* Consumer.run(work, handler, { group: "g" }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("work", "g"), (l) => l === 0), { within: "5 seconds" }))
      // Nothing lost, nothing completed twice, order kept.
      assert.deepStrictEqual([...firstRun, ...secondRun], ["m0", "m1", "m2", "m3", "m4"])
      yield* Fiber.interrupt(second)
    }).pipe(withStack()))
})
