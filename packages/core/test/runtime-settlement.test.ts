/**
 * Settlement edge cases of the runtime under TestClock (installed by `it.effect`):
 * - the broker contract "ack and nack are idempotent: only the first settlement counts" (Broker.ts),
 *   checked on the in-memory broker through `Subscriber`;
 * - a dead-letter publish that fails is never acked: the message is nacked and retried later;
 * - `deadLetter: false` nacks failures, so the broker redelivers until the handler succeeds;
 * - `onUnknownType` governs unknown event types whatever `onDecodeFailure` says;
 * - a delivery past the broker's `deliveryLimit` is dead-lettered without running the handler.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Effect, Fiber, References, Schema, Stream } from "effect"
import {
  Broker,
  Consumer,
  Envelope,
  Errors,
  Headers as H,
  MemoryBroker,
  Publisher,
  Router,
  Subscriber,
  Switchyard,
  Topic
} from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"

const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, References.MinimumLogLevel, "None")
const memory = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Switchyard.layerMemory({ partitions: 4 })), quiet)

const Item = Schema.Struct({ id: Schema.String })
const items = Topic.make("items", Item, { key: (i) => i.id })

/** Subscribes with `Subscriber` in the background and collects every delivery it receives. */
const collectDeliveries = (group: string) =>
  Effect.gen(function*() {
    const got: Array<Subscriber.Delivery<typeof Item.Type>> = []
    const fiber = yield* Subscriber.subscribe(items, { group }).pipe(
      Stream.runForEach((delivery) => Effect.sync(() => got.push(delivery))),
      Effect.forkChild
    )
    yield* TestKit.settle()
    return { got, fiber }
  })

describe("settlement is idempotent (Broker contract: only the first settlement counts)", () => {
  it.effect("ack then nack: the nack is ignored, nothing is redelivered", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publish(items, { id: "a" })
      const { fiber, got } = yield* collectDeliveries("g")
      assert.strictEqual(got.length, 1)
      yield* got[0]!.ack
      yield* got[0]!.nack()
      yield* TestKit.advance("1 second")
      assert.strictEqual(got.length, 1)
      assert.strictEqual(yield* inspect.lag("items", "g"), 0)
      yield* Fiber.interrupt(fiber)
    }).pipe(memory))

  it.effect("nack twice before the redelivery: delivered again exactly once", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publish(items, { id: "a" })
      const { fiber, got } = yield* collectDeliveries("g")
      yield* got[0]!.nack({ delay: "100 millis" })
      yield* got[0]!.nack({ delay: "100 millis" })
      yield* TestKit.advance("1 second")
      assert.deepStrictEqual(got.map((d) => d.envelope.attempt), [1, 2])
      assert.strictEqual(yield* inspect.inFlight("items", "g"), 1)
      yield* Fiber.interrupt(fiber)
    }).pipe(memory))

  // Regression: settlements were once matched by (generation, offset) instead of by delivery, so a late
  // `ack` of an already nacked delivery acknowledged its redelivery while that was still being processed.
  it.effect("nack, redelivery, then a stale ack of the first delivery must not acknowledge the redelivery", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publish(items, { id: "a" })
      const { fiber, got } = yield* collectDeliveries("g")
      yield* got[0]!.nack()
      yield* TestKit.advance("10 millis")
      assert.deepStrictEqual(got.map((d) => d.envelope.attempt), [1, 2])
      assert.strictEqual(yield* inspect.inFlight("items", "g"), 1)
      // The first delivery was already settled (nack): this ack must not count.
      yield* got[0]!.ack
      assert.strictEqual(yield* inspect.inFlight("items", "g"), 1, "the redelivery is still in flight")
      assert.strictEqual(yield* inspect.lag("items", "g"), 1, "the message is not acknowledged yet")
      // Settling the redelivery itself works.
      yield* got[1]!.ack
      assert.strictEqual(yield* inspect.lag("items", "g"), 0)
      yield* Fiber.interrupt(fiber)
    }).pipe(memory))

  // Same regression, nack flavour: a second nack of the first delivery must not re-queue the message while
  // its redelivery is in flight.
  it.effect("nack, redelivery, then a stale nack of the first delivery must not cause another delivery", () =>
    Effect.gen(function*() {
      yield* Publisher.publish(items, { id: "a" })
      const { fiber, got } = yield* collectDeliveries("g")
      yield* got[0]!.nack()
      yield* TestKit.advance("10 millis")
      assert.strictEqual(got.length, 2)
      yield* got[0]!.nack()
      yield* TestKit.advance("1 second")
      assert.deepStrictEqual(got.map((d) => d.envelope.attempt), [1, 2], "delivered again while in flight")
      yield* Fiber.interrupt(fiber)
    }).pipe(memory))
})

class Boom extends Data.TaggedError("Boom")<{}> {}

describe("failure paths of the consumer", () => {
  it.effect("a failing dead-letter publish is never acked: nacked, redelivered ≥ 1s later, parked once the DLQ works", () => {
    let dlqFailuresLeft = 2
    const dlqAttempts: Array<number> = []
    const flakyDlq = Switchyard.on(MemoryBroker.layerWrapped((broker) => ({
      ...broker,
      publish: (destination, messages) =>
        destination !== "items.dlq"
          ? broker.publish(destination, messages)
          : Effect.flatMap(Clock.currentTimeMillis, (now) => {
            dlqAttempts.push(now)
            return dlqFailuresLeft-- > 0
              ? Effect.fail(new Errors.PublishError({ destination, reason: Errors.reason("Unknown", "dlq unavailable") }))
              : broker.publish(destination, messages)
          })
    }), { partitions: 4 }))
    return Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const deliveries: Array<number> = []
      yield* Publisher.publish(items, { id: "poison" })
      const consumer = yield* Consumer.run(
        items,
        (_, envelope) => Effect.andThen(Effect.sync(() => deliveries.push(envelope.attempt)), Effect.fail(new Boom())),
        { group: "g" }
      ).pipe(Effect.forkChild)
      yield* TestKit.advance("500 millis")
      // First dead-letter attempt failed: not acked, waiting for a redelivery.
      assert.deepStrictEqual(deliveries, [1])
      assert.strictEqual(yield* inspect.lag("items", "g"), 1)
      assert.isTrue(
        yield* TestKit.advanceUntil(Effect.map(inspect.deadLetters("items"), (d) => d.length === 1), { within: "10 seconds" })
      )
      assert.deepStrictEqual(deliveries, [1, 2, 3])
      assert.strictEqual(dlqAttempts.length, 3)
      // Each redelivery waited for the nack delay (1 second).
      assert.isAtLeast(dlqAttempts[1]! - dlqAttempts[0]!, 1000)
      assert.isAtLeast(dlqAttempts[2]! - dlqAttempts[1]!, 1000)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("items", "g"), (l) => l === 0), { within: "1 second" }))
      const [dead] = yield* inspect.deadLetters("items")
      assert.strictEqual(dead!.headers[H.deadLetterErrorTag], "Boom")
      assert.strictEqual(dead!.headers[H.deadLetterAttempts], "3")
      yield* Fiber.interrupt(consumer)
    }).pipe(Effect.provide(flakyDlq), quiet)
  })

  it.effect("deadLetter: false nacks a failed message; the broker redelivers it until the handler succeeds", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const seen: Array<number> = []
      let completed = 0
      yield* Publisher.publish(items, { id: "flaky" })
      const consumer = yield* Consumer.run(
        items,
        (_, envelope) =>
          Effect.gen(function*() {
            seen.push(envelope.attempt)
            if (envelope.attempt < 3) return yield* new Boom()
            completed++
          }),
        { group: "g", deadLetter: false }
      ).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => completed === 1), { within: "5 seconds" }))
      yield* TestKit.advance("1 second")
      assert.deepStrictEqual(seen, [1, 2, 3])
      assert.strictEqual(yield* inspect.lag("items", "g"), 0)
      assert.strictEqual(yield* inspect.publishedCount("items.dlq"), 0)
      yield* Fiber.interrupt(consumer)
    }).pipe(memory))

  // Regression: the dead-letter reason came from a bare `JSON.stringify`, which throws on cycles and BigInt
  // (inside the consumer) and gives `undefined` for `undefined`.
  it.effect("errors JSON cannot print (cyclic, BigInt, undefined) are dead-lettered with a string reason; the consumer survives", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const cyclic: { self?: unknown; name: string } = { name: "cyclic" }
      cyclic.self = cyclic
      // Neither JSON nor `String` can print this one.
      const opaque: { self?: unknown } = Object.create(null)
      opaque.self = opaque
      const errors: Record<string, unknown> = {
        cyclic,
        bigint: { amount: 10n },
        bare: 10n,
        undefined: undefined,
        opaque
      }
      const handled: Array<string> = []
      for (const id of [...Object.keys(errors), "fine"]) yield* Publisher.publish(items, { id })
      const consumer = yield* Consumer.run(
        items,
        (item): Effect.Effect<void, unknown> =>
          item.id in errors ? Effect.fail(errors[item.id]) : Effect.sync(() => handled.push(item.id)),
        { group: "g" }
      ).pipe(Effect.forkChild)
      assert.isTrue(
        yield* TestKit.advanceUntil(Effect.map(inspect.lag("items", "g"), (l) => l === 0), { within: "5 seconds" })
      )
      assert.isUndefined(consumer.pollUnsafe(), "the consumer is still running")
      assert.deepStrictEqual(handled, ["fine"])
      const dead = yield* inspect.deadLetters("items")
      const reasons = Object.fromEntries(
        dead.map((d) => [JSON.parse(new TextDecoder().decode(d.payload)).id, d.headers[H.deadLetterReason]])
      )
      assert.deepStrictEqual(reasons, {
        cyclic: "[object Object]",
        bigint: "[object Object]",
        bare: "10",
        undefined: "undefined",
        opaque: "unprintable error value"
      })
      yield* Fiber.interrupt(consumer)
    }).pipe(memory))

  it.effect("idempotency: a message id already handled by the group is acked without running the handler", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const handled: Array<string> = []
      yield* Publisher.publish(items, { id: "1" }, { id: "same" })
      yield* Publisher.publish(items, { id: "2" }, { id: "same" })
      yield* Publisher.publish(items, { id: "3" }, { id: "other" })
      const consumer = yield* Consumer.run(items, (i) => Effect.sync(() => handled.push(i.id)), {
        group: "g",
        idempotency: true
      }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("items", "g"), (l) => l === 0), { within: "1 second" }))
      assert.strictEqual(handled.length, 2)
      assert.include(handled, "3")
      assert.strictEqual(handled.filter((id) => id === "1" || id === "2").length, 1)
      yield* Fiber.interrupt(consumer)
    }).pipe(memory))
})

const Known = Schema.TaggedStruct("Known", { id: Schema.String })
const AnyTagged = Schema.Struct({ _tag: Schema.String, id: Schema.String })

/** Publishes an event of unknown type plus a known one, runs a router consumer, returns what happened. */
const unknownTypeRun = (options: Consumer.Options<never>) =>
  Effect.gen(function*() {
    const inspect = yield* MemoryBroker.MemoryBroker
    const handled: Array<string> = []
    const router = Router.make("events", Known, { Known: (e) => Effect.sync(() => handled.push(e.id)) })
    yield* Publisher.publish(Topic.make("events", AnyTagged), { _tag: "Mystery", id: "u" }, { id: "mystery-1" })
    yield* Publisher.publish<typeof Known.Type>(router.topic, { _tag: "Known", id: "k" })
    const consumer = yield* Consumer.run(router.topic, router.handler, { group: "g", ...options }).pipe(Effect.forkChild)
    yield* TestKit.advance("1 second")
    const exit = consumer.pollUnsafe()
    const result = {
      consumerAlive: exit === undefined,
      handled,
      dead: (yield* inspect.deadLetters("events")).map((d) => d.headers[H.deadLetterErrorTag]),
      lag: yield* inspect.lag("events", "g")
    }
    yield* Fiber.interrupt(consumer)
    return result
  }).pipe(memory)

describe("onUnknownType governs unknown event types, independently of onDecodeFailure", () => {
  it.effect("onUnknownType \"ignore\" + onDecodeFailure \"fail\": the unknown type is acked, the consumer keeps running", () =>
    Effect.gen(function*() {
      const result = yield* unknownTypeRun({ decode: { onUnknownType: "ignore", onFailure: "fail" } })
      assert.deepStrictEqual(result, { consumerAlive: true, handled: ["k"], dead: [], lag: 0 })
    }))

  // Regression: `decode: { decode: { onUnknownType: "dead-letter" } }` (the default) once fell through to `onDecodeFailure`, so with
  // "skip" an unknown event was silently dropped and with "fail" the consumer died.
  it.effect("onUnknownType \"dead-letter\" + onDecodeFailure \"skip\": the unknown type is still dead-lettered", () =>
    Effect.gen(function*() {
      const result = yield* unknownTypeRun({ decode: { onUnknownType: "dead-letter", onFailure: "skip" } })
      assert.deepStrictEqual(result, { consumerAlive: true, handled: ["k"], dead: ["UnknownEventType"], lag: 0 })
    }))

  it.effect("onUnknownType \"dead-letter\" + onDecodeFailure \"fail\": the unknown type is dead-lettered, the consumer survives", () =>
    Effect.gen(function*() {
      const result = yield* unknownTypeRun({ decode: { onUnknownType: "dead-letter", onFailure: "fail" } })
      assert.deepStrictEqual(result, { consumerAlive: true, handled: ["k"], dead: ["UnknownEventType"], lag: 0 })
    }))
})

describe("a delivery past the broker's delivery limit", () => {
  // The in-memory broker has no limit of its own: this wrapper declares one (as JetStream's maxDeliver does).
  const limited = Switchyard.on(MemoryBroker.layerWrapped((broker) => ({
    ...broker,
    subscribe: (destination, options) =>
      Effect.map(broker.subscribe(destination, options), (subscription) => ({
        deliveries: Stream.map(subscription.deliveries, (delivery) => ({
          envelope: delivery.envelope,
          ack: delivery.ack,
          nack: delivery.nack,
          deliveryLimit: 2
        }))
      }))
  }), { partitions: 1 }))

  it.effect("is dead-lettered with the reason instead of running the handler; deliveries within it run", () =>
    Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publish(items, { id: "crashy" })
      // Two deliveries that ended unsettled, as if the consumer had crashed each time.
      const { fiber, got } = yield* collectDeliveries("g")
      yield* got[0]!.nack()
      yield* TestKit.advance("10 millis")
      yield* got[1]!.nack()
      yield* TestKit.advance("10 millis")
      // The third delivery (already past the limit) also ends unsettled when this subscriber stops.
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(got.map((d) => [d.envelope.attempt, d.deliveryLimit]), [[1, 2], [2, 2], [3, 2]])

      const handled: Array<string> = []
      yield* Publisher.publish(items, { id: "fine" })
      const consumer = yield* Consumer.run(items, (item) => Effect.sync(() => handled.push(item.id)), { group: "g" }).pipe(
        Effect.forkChild
      )
      assert.isTrue(
        yield* TestKit.advanceUntil(Effect.map(inspect.lag("items", "g"), (l) => l === 0), { within: "5 seconds" })
      )
      assert.deepStrictEqual(handled, ["fine"])
      const dead = yield* inspect.deadLetters("items")
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.headers[H.deadLetterErrorTag], "DeliveryLimitExceeded")
      assert.include(dead[0]!.headers[H.deadLetterReason], "delivered 4 times, past the broker's limit of 2")
      assert.strictEqual(dead[0]!.headers[H.deadLetterAttempts], "3")
      yield* Fiber.interrupt(consumer)
    }).pipe(Effect.provide(limited), quiet))
})

describe("in-memory broker: a rebalance never redelivers an acknowledged message", () => {
  // Regression: after a reassignment the new owner resumes from the committed offset while acks above it are
  // kept. Acking the first unacknowledged offset then moved `committed` past the new owner's `next` (and
  // dropped those acks), so the already acknowledged message in between was delivered again.
  it.effect("A takes m0 and m1, acks only m1 and closes; B sees m0 (attempt 2) and m2, never m1", () =>
    Effect.gen(function*() {
      const { broker, inspect } = MemoryBroker.make({ partitions: 1 })
      yield* broker.publish(
        "t",
        ["m0", "m1", "m2"].map((id) => Envelope.outgoing(new TextEncoder().encode(id), { id }))
      )
      /** A member of group "g" in the background; `onDelivery` runs for each delivery in order. */
      const member = (prefetch: number, onDelivery: (delivery: Broker.RawDelivery) => Effect.Effect<void, Errors.AckError>) =>
        Effect.scoped(
          Effect.flatMap(
            broker.subscribe("t", { group: "g", prefetch, startFrom: "earliest" }),
            (subscription) => Stream.runForEach(subscription.deliveries, onDelivery)
          )
        ).pipe(Effect.forkChild)

      // A leaves m0 unsettled, acks m1 and then stalls (it pulls nothing more, so m2 stays undelivered).
      const seenA: Array<[string, number]> = []
      const a = yield* member(2, (delivery) =>
        Effect.andThen(
          Effect.sync(() => seenA.push([delivery.envelope.id, delivery.envelope.attempt])),
          delivery.envelope.id === "m1" ? Effect.andThen(delivery.ack, Effect.never) : Effect.void
        ))
      yield* TestKit.settle()
      assert.deepStrictEqual(seenA, [["m0", 1], ["m1", 1]])
      assert.deepStrictEqual(yield* inspect.committedOffsets("t", "g"), [0], "m0 is not acknowledged")
      assert.strictEqual(yield* inspect.inFlight("t", "g"), 1, "m0 is in flight, m1 acked, m2 not taken")
      yield* Fiber.interrupt(a)

      const seenB: Array<[string, number]> = []
      const b = yield* member(1, (delivery) =>
        Effect.andThen(Effect.sync(() => seenB.push([delivery.envelope.id, delivery.envelope.attempt])), delivery.ack))
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("t", "g"), (l) => l === 0), { within: "1 second" }))
      yield* TestKit.advance("1 second")
      assert.deepStrictEqual(seenB, [["m0", 2], ["m2", 1]])
      assert.deepStrictEqual(yield* inspect.committedOffsets("t", "g"), [3])
      assert.strictEqual(yield* inspect.inFlight("t", "g"), 0)
      yield* Fiber.interrupt(b)
    }).pipe(quiet))
})
