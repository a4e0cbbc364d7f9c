import { assert, describe, it } from "@effect/vitest"
import { Consumer, Errors, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"
import { Effect, Exit, Fiber, Layer, Schedule, Schema, Stream } from "effect"

const Item = Schema.Struct({ n: Schema.Number })
const items = Topic.make("flaky", Item)

/** The in-memory broker, except that its first subscription fails after two deliveries (a lost connection). */
const flakyBroker = Layer.suspend(() => {
  let subscriptions = 0
  return MemoryBroker.layerWrapped((broker) => ({
    ...broker,
    subscribe: (destination, options) =>
      Effect.map(broker.subscribe(destination, options), (subscription) =>
        ++subscriptions === 1
          ? {
            deliveries: Stream.concat(
              Stream.take(subscription.deliveries, 2),
              Stream.fail(new Errors.SubscribeError({ destination, reason: Errors.reason("Unknown", "connection lost") }))
            )
          }
          : subscription)
  }), { partitions: 1 })
})

const stack = Switchyard.on(flakyBroker)

describe("consumer restart", () => {
  it.effect("without `restart` a failed subscription fails the consumer with the SubscribeError", () =>
    Effect.gen(function*() {
      yield* Publisher.publishAll(items, Array.from({ length: 5 }, (_, n) => ({ n })))
      const fiber = yield* Consumer.run(items, () => Effect.void, { group: "g" }).pipe(Effect.forkChild)
      yield* TestKit.advance("1 second")
      const exit = fiber.pollUnsafe()
      assert.isDefined(exit)
      assert.isTrue(exit !== undefined && Exit.isFailure(exit))
      if (exit !== undefined && Exit.isFailure(exit)) assert.include(String(exit.cause), "connection lost")
    }).pipe(Effect.provide(stack)))

  it.effect("with `restart` the consumer subscribes again and handles every message", () =>
    Effect.gen(function*() {
      yield* Publisher.publishAll(items, Array.from({ length: 5 }, (_, n) => ({ n })))
      const handled = new Set<number>()
      const fiber = yield* Consumer.run(items, ({ n }) => Effect.sync(() => handled.add(n)), {
        group: "g",
        restart: Schedule.spaced("100 millis")
      }).pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => handled.size === 5), { within: "5 seconds" }))
      assert.isUndefined(fiber.pollUnsafe(), "the consumer is still running")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(stack)))
})
