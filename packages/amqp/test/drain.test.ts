/**
 * Graceful drain: deliveries the adapter buffered but never handed out go back to the queue at once when
 * the consumer stops reading, so another member of the group gets them while in-flight work finishes.
 */
import { assert, layer } from "@effect/vitest"
import { Broker, Consumer, Switchyard } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { BrokerLive, collect, eventually, rawChannel, rawPublish, takeN, unique } from "./helpers.ts"
import { AmqpTopology } from "../src/index.ts"
import { RawAmqp } from "../src/testing/index.ts"

const utf8 = new TextEncoder()
const order = (id: string) => ({ content: utf8.encode(JSON.stringify({ id, n: 1 })), options: { messageId: id } })

layer(Switchyard.on(BrokerLive), { excludeTestServices: true, timeout: "30 seconds" })("graceful drain", (it) => {
  it.effect("stopIntake: the deliveries a member buffered go to another member at once, while its channel stays open", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const channel = yield* rawChannel
      const destination = unique("drain-intake")
      yield* RawAmqp.declare(channel, AmqpTopology.consumerGroup(destination, "g"))
      const first = yield* Scope.make()
      const a = yield* broker.subscribe(destination, { group: "g", prefetch: 20, startFrom: "earliest" }).pipe(Scope.provide(first))
      yield* rawPublish(channel, destination, Array.from({ length: 10 }, (_, i) => order(`m-${i}`)))
      // A's consumer holds all ten (prefetch 20) in the adapter's buffer; nothing has taken them
      yield* Effect.promise(async () => {
        while ((await channel.checkQueue(`${destination}.g`)).messageCount > 0) await new Promise((r) => setTimeout(r, 20))
      })
      assert.isDefined(a.stopIntake)
      yield* a.stopIntake!
      const b = yield* collect(destination, "g")
      const got = yield* takeN(b, 10, "10 seconds")
      assert.deepStrictEqual(got.map((d) => d.envelope.id).sort(), Array.from({ length: 10 }, (_, i) => `m-${i}`).sort())
      // A's subscription is still open (its scope is), but takes nothing more
      yield* rawPublish(channel, destination, [order("m-10")])
      const [late] = yield* takeN(b, 1, "10 seconds")
      assert.strictEqual(late!.envelope.id, "m-10")
      yield* Scope.close(first, Exit.void)
    }), 15_000)

  it.effect("stopping a consumer whose handler is busy: another member gets the deliveries the adapter buffered, before the drain ends", () =>
    Effect.gen(function*() {
      const channel = yield* rawChannel
      const destination = unique("drain-consumer")
      yield* RawAmqp.declare(channel, AmqpTopology.consumerGroup(destination, "g"))
      const topic = PoisonCorpus.topic(destination)
      const gate = yield* Deferred.make<void>()
      const startedByA: Array<string> = []
      const handledByB: Array<string> = []
      const a = yield* Consumer.run(topic, (o) => Effect.sync(() => startedByA.push(o.id)).pipe(Effect.andThen(Deferred.await(gate))), {
        group: "g",
        prefetch: 20
      }).pipe(Effect.forkChild)
      yield* rawPublish(channel, destination, [order("m-0")])
      yield* eventually(() => startedByA.length === 1)
      // A's handler is busy: these ten wait in the adapter's buffer (prefetch 20)
      yield* rawPublish(channel, destination, Array.from({ length: 10 }, (_, i) => order(`m-${i + 1}`)))
      // stop A: its drain waits for the busy handler, which waits for the gate
      const stopping = yield* Fiber.interrupt(a).pipe(Effect.forkChild)
      const b = yield* Consumer.run(topic, (o) => Effect.sync(() => handledByB.push(o.id)), { group: "g" }).pipe(Effect.forkChild)
      // B gets all ten while A's handler is still busy (before: only after A's drain ended): what A's adapter
      // buffered (stopIntake) and what A's pipeline had taken but not started (the Consumer gives it back)
      yield* eventually(() => handledByB.length === 10)
      assert.deepStrictEqual(startedByA, ["m-0"])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(stopping)
      yield* Fiber.interrupt(b)
      assert.deepStrictEqual([...handledByB].sort(), Array.from({ length: 10 }, (_, i) => `m-${i + 1}`).sort())
    }), 15_000)
})
