import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Stream } from "effect"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { Envelope, MemoryBroker } from "../src/index.ts"

const message = (n: number) =>
  Envelope.outgoing(new TextEncoder().encode(`{"n":${n}}`), { id: `m-${n}`, key: "k", timestamp: 1 })


describe("in-memory broker", () => {
  it.effect("settle once: a second ack, or a nack after the ack, changes nothing", () =>
    Effect.gen(function*() {
      const { broker, inspect } = MemoryBroker.make({ partitions: 1 })
      yield* broker.publish("orders", [message(1), message(2)])
      const sub = yield* broker.subscribe("orders", { group: "g", prefetch: 1, startFrom: "earliest" })
      const [first] = yield* Stream.runCollect(Stream.take(sub.deliveries, 1))
      yield* first!.ack
      yield* first!.ack
      yield* first!.nack()
      assert.deepStrictEqual(yield* inspect.committedOffsets("orders", "g"), [1])
      assert.strictEqual(yield* inspect.lag("orders", "g"), 1)
      const [second] = yield* Stream.runCollect(Stream.take(sub.deliveries, 1))
      assert.strictEqual(second!.envelope.id, "m-2", "the acked message came back")
    }))

  it.effect("a nack with a delay redelivers at that time of the Clock, with the next attempt number", () =>
    Effect.gen(function*() {
      const { broker } = MemoryBroker.make({ partitions: 1 })
      yield* broker.publish("orders", [message(1)])
      const sub = yield* broker.subscribe("orders", { group: "g", prefetch: 4, startFrom: "earliest" })
      const [first] = yield* Stream.runCollect(Stream.take(sub.deliveries, 1))
      yield* first!.nack({ delay: "5 seconds" })
      const again = yield* Stream.runCollect(Stream.take(sub.deliveries, 1)).pipe(Effect.forkChild)
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(again.pollUnsafe())
      yield* TestClock.adjust("1 milli")
      const [redelivered] = yield* Fiber.join(again)
      assert.strictEqual(redelivered!.envelope.id, "m-1")
      assert.strictEqual(redelivered!.envelope.attempt, 2)
    }))

  it.effect("a settlement of a delivery from before a rebalance is ignored: the new owner gets the message", () =>
    Effect.gen(function*() {
      const { broker, inspect } = MemoryBroker.make({ partitions: 1 })
      yield* broker.publish("orders", [message(1)])
      const open = broker.subscribe("orders", { group: "g", prefetch: 1, startFrom: "earliest" })
      const firstScope = yield* Scope.make()
      const first = yield* Scope.provide(open, firstScope)
      const second = yield* open
      // The first member (the partition's owner) takes the message and leaves: the partition goes to the
      // second member, in a new generation.
      const [held] = yield* Stream.runCollect(Stream.take(first.deliveries, 1))
      yield* Scope.close(firstScope, Exit.void)
      yield* held!.ack
      assert.strictEqual(yield* inspect.lag("orders", "g"), 1, "a stale ack was counted")
      const [again] = yield* Stream.runCollect(Stream.take(second.deliveries, 1))
      assert.strictEqual(again!.envelope.id, "m-1")
      assert.strictEqual(again!.envelope.attempt, 2)
      yield* again!.ack
      assert.strictEqual(yield* inspect.lag("orders", "g"), 0)
    }))

  it.effect("a member's deliveries end when its subscription closes", () =>
    Effect.gen(function*() {
      const { broker } = MemoryBroker.make({ partitions: 2 })
      const fiber = yield* Effect.scoped(
        Effect.flatMap(broker.subscribe("orders", { group: "g", prefetch: 4, startFrom: "earliest" }), (sub) =>
          Effect.succeed(sub.deliveries))
      ).pipe(Effect.flatMap((deliveries) => Stream.runCollect(deliveries)), Effect.forkChild)
      const collected = yield* Fiber.join(fiber)
      assert.strictEqual(collected.length, 0)
    }))
})
