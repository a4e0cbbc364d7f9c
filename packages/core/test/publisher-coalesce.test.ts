/**
 * Coalescing of concurrent `Publisher.publish` calls (internal/publish/coalesce.ts): one broker call per
 * batch of waiting single publishes, each caller completed with its own receipt or error; a caller's own
 * sequential publishes keep their order; a caller interrupted before its message was taken gives it up;
 * the waiting queue is bounded (callers wait).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Result, Schema, Tracer } from "effect"
import * as Scope from "effect/Scope"
import { Envelope, Errors, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"
import * as Coalesce from "../src/internal/publish/coalesce.ts"

const Item = Schema.Struct({ caller: Schema.Number, n: Schema.Number })
const items = Topic.make("items", Item)
const decodeItem = (envelope: Envelope.Envelope) =>
  JSON.parse(new TextDecoder().decode(envelope.payload)) as typeof Item.Type

/**
 * The in-memory broker with its publish calls counted (batch sizes recorded), confirming after a yield like
 * a broker over the network (one that confirms at once is never waited for: each caller sends alone).
 */
const counted = (batches: Array<number>, wrap: (broker: Broker.BrokerShape) => Partial<Broker.BrokerShape> = () => ({})) =>
  Switchyard.on(MemoryBroker.layerWrapped((broker) => ({
    ...broker,
    publish: (destination, messages) => {
      batches.push(messages.length)
      return Effect.andThen(Effect.yieldNow, broker.publish(destination, messages))
    },
    ...wrap(broker)
  }), { partitions: 1 }))

const errorOf = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
const message = (n: number) => Envelope.outgoing(new TextEncoder().encode(`${n}`), { id: `m-${n}` })
const receipt = (m: { id: string }) => ({ id: m.id, coordinates: { destination: "d" } })

describe("Publisher: concurrent single publishes are coalesced", () => {
  it.effect("64 fibers publishing one message each use fewer broker calls; every caller gets its own receipt", () =>
    Effect.gen(function*() {
      const batches: Array<number> = []
      const receipts = yield* Effect.forEach(
        Array.from({ length: 64 }, (_, n) => n),
        (n) => Publisher.publish(items, { caller: n, n: 0 }, { id: `id-${n}` }),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(counted(batches)))
      assert.deepStrictEqual(receipts.map((r) => r.id), Array.from({ length: 64 }, (_, n) => `id-${n}`))
      assert.strictEqual(batches.reduce((a, b) => a + b, 0), 64)
      assert.isBelow(batches.length, 64, `batches: ${batches.join(",")}`)
      assert.isAbove(Math.max(...batches), 1)
    }))

  it.effect("each caller's sequential publishes reach the broker in its order", () =>
    Effect.gen(function*() {
      const batches: Array<number> = []
      const stored = yield* Effect.gen(function*() {
        yield* Effect.forEach(
          Array.from({ length: 8 }, (_, caller) => caller),
          (caller) => Effect.forEach(Array.from({ length: 40 }, (_, n) => n), (n) => Publisher.publish(items, { caller, n })),
          { concurrency: "unbounded", discard: true }
        )
        const inspect = yield* MemoryBroker.MemoryBroker
        return yield* inspect.published("items")
      }).pipe(Effect.provide(counted(batches)))
      assert.strictEqual(stored.length, 320)
      for (let caller = 0; caller < 8; caller++) {
        const mine = stored.map(decodeItem).filter((item) => item.caller === caller).map((item) => item.n)
        assert.deepStrictEqual(mine, Array.from({ length: 40 }, (_, n) => n), `caller ${caller}`)
      }
      assert.isBelow(batches.length, 320)
    }))

  it.effect("a broker that refuses message k of a batch (publishEach) fails only that caller", () =>
    Effect.gen(function*() {
      const batches: Array<number> = []
      const refused = new Errors.PublishError({ destination: "items", reason: Errors.reason("TooLarge", "too large") })
      const layer = counted(batches, (broker) => ({
        publishEach: (destination, messages) => {
          batches.push(messages.length)
          const good = messages.filter((m) => !m.id.startsWith("bad"))
          return Effect.map(Effect.andThen(Effect.yieldNow, broker.publish(destination, good)), (receipts) => {
            const byId = new Map(receipts.map((r) => [r.id, r]))
            return messages.map((m) => byId.has(m.id) ? Result.succeed(byId.get(m.id)!) : Result.fail(refused))
          })
        }
      }))
      const exits = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, n) => n),
        (n) => Effect.exit(Publisher.publish(items, { caller: n, n: 0 }, { id: n === 4 ? "bad-4" : `ok-${n}` })),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(layer))
      exits.forEach((exit, n) => {
        if (n === 4) assert.strictEqual(errorOf(exit), refused)
        else assert.isTrue(Exit.isSuccess(exit) && exit.value.id === `ok-${n}`, `caller ${n}: ${String(exit)}`)
      })
      assert.isAbove(Math.max(...batches), 1, "the ten were sent in one or more batches")
    }))

  it.effect("a batch is sent in the publisher's context, not in the span of whichever caller came first", () =>
    Effect.gen(function*() {
      const parents: Array<{ readonly size: number; readonly parent: string | undefined }> = []
      const layer = counted([], (broker) => ({
        publish: (destination, messages) =>
          Effect.flatMap(Effect.serviceOption(Tracer.ParentSpan), (span) => {
            const parent = Option.isSome(span) && span.value._tag === "Span" ? span.value.name : undefined
            parents.push({ size: messages.length, parent })
            return Effect.andThen(Effect.yieldNow, broker.publish(destination, messages))
          })
      }))
      yield* Effect.forEach(
        Array.from({ length: 16 }, (_, n) => n),
        (n) => Publisher.publish(items, { caller: n, n: 0 }).pipe(Effect.withSpan(`caller-${n}`)),
        { concurrency: "unbounded", discard: true }
      ).pipe(Effect.provide(layer))
      const batched = parents.filter((call) => call.size > 1)
      assert.isAbove(batched.length, 0)
      for (const call of batched) assert.isUndefined(call.parent, `a batch ran under ${call.parent}`)
    }))

  it.effect("without publishEach, a failed batch fails every caller in it with the broker's error", () =>
    Effect.gen(function*() {
      const down = new Errors.PublishError({ destination: "items", reason: Errors.reason("Unreachable", "down") })
      const layer = counted([], () => ({ publish: () => Effect.fail(down) }))
      const exits = yield* Effect.forEach(
        Array.from({ length: 5 }, (_, n) => n),
        (n) => Effect.exit(Publisher.publish(items, { caller: n, n: 0 })),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(layer))
      for (const exit of exits) assert.strictEqual(errorOf(exit), down)
    }))
})

describe("Coalesce (internal)", () => {
  /** A send held at a gate; records what it was given. */
  const gated = Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const sent: Array<ReadonlyArray<string>> = []
    const send: Coalesce.SendEach = (_, messages) =>
      Effect.as(
        Effect.andThen(Effect.sync(() => sent.push(messages.map((m) => m.id))), Deferred.await(gate)),
        messages.map((m) => Result.succeed(receipt(m)))
      )
    return { gate, sent, send }
  })

  it.live("a caller that finds its destination idle sends alone, at once", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const sent: Array<ReadonlyArray<string>> = []
      const send: Coalesce.SendEach = (_, messages) =>
        Effect.sync(() => {
          sent.push(messages.map((m) => m.id))
          return messages.map((m) => Result.succeed(receipt(m)))
        })
      const coalescer = Coalesce.make(send, { batchSize: 10, capacity: 10, inFlight: 1 }, scope, yield* Effect.context<never>())
      for (let n = 0; n < 3; n++) assert.strictEqual((yield* coalescer.publish("d", message(n))).id, `m-${n}`)
      assert.deepStrictEqual(sent, [["m-0"], ["m-1"], ["m-2"]])
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("at most `inFlight` broker calls run at once per destination; the next batch waits for a free slot", () =>
    Effect.gen(function*() {
      for (const inFlight of [1, 3]) {
        const { gate, send, sent } = yield* gated
        const scope = yield* Scope.make()
        const coalescer = Coalesce.make(send, { batchSize: 1, capacity: 10, inFlight }, scope, yield* Effect.context<never>())
        const fibers = yield* Effect.forEach(
          Array.from({ length: 6 }, (_, n) => n),
          (n) => Effect.forkChild(coalescer.publish("d", message(n))),
          { concurrency: 1 }
        )
        yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === inFlight, { within: "2 seconds" })
        yield* TestKit.settle()
        assert.strictEqual(sent.length, inFlight, `calls in flight with inFlight = ${inFlight}`)
        yield* Deferred.succeed(gate, undefined)
        const receipts = yield* Fiber.joinAll(fibers)
        assert.deepStrictEqual(receipts.map((r) => r.id), Array.from({ length: 6 }, (_, n) => `m-${n}`))
        assert.deepStrictEqual(sent.flat(), Array.from({ length: 6 }, (_, n) => `m-${n}`), "taken and sent in order")
        yield* Scope.close(scope, Exit.void)
      }
    }))

  it.live("a caller whose message the broker confirmed goes on at once, while the rest of its batch is in flight", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const sent: Array<ReadonlyArray<string>> = []
      // confirms the first message of a call at once, the call itself only at the gate
      const send: Coalesce.SendEach = (_, messages, onConfirmed) =>
        Effect.andThen(
          Effect.sync(() => {
            sent.push(messages.map((m) => m.id))
            onConfirmed(0, receipt(messages[0]!))
          }),
          Effect.as(Deferred.await(gate), messages.map((m) => Result.succeed(receipt(m))))
        )
      const scope = yield* Scope.make()
      const coalescer = Coalesce.make(send, { batchSize: 10, capacity: 10, inFlight: 2 }, scope, yield* Effect.context<never>())
      const first = yield* Effect.forkChild(coalescer.publish("d", message(0))) // alone: waits for its call
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 1, { within: "2 seconds" })
      const batched = yield* Effect.forEach([1, 2, 3], (n) => Effect.forkChild(coalescer.publish("d", message(n))))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 2, { within: "2 seconds" })
      assert.deepStrictEqual(sent[1], ["m-1", "m-2", "m-3"])
      // m-1 was confirmed on its own: its caller has its receipt while m-2, m-3 and the calls still wait
      assert.strictEqual((yield* Fiber.join(batched[0]!)).id, "m-1")
      yield* TestKit.settle()
      assert.isUndefined(batched[1]!.pollUnsafe(), "m-2 waits for its call")
      assert.isUndefined(first.pollUnsafe(), "a lone message waits for its call")
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual((yield* Fiber.joinAll([first, ...batched])).map((r) => r.id), ["m-0", "m-1", "m-2", "m-3"])
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a caller publishing again right after its confirm does not overtake a batch held for a slot", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const sent: Array<ReadonlyArray<string>> = []
      const send: Coalesce.SendEach = (_, messages) =>
        Effect.andThen(
          Effect.sync(() => sent.push(messages.map((m) => m.id))),
          Effect.as(messages[0]!.id === "m-100" ? Deferred.await(gate) : Effect.void, messages.map((m) => Result.succeed(receipt(m))))
        )
      const scope = yield* Scope.make()
      const coalescer = Coalesce.make(send, { batchSize: 10, capacity: 10, inFlight: 1 }, scope, yield* Effect.context<never>())
      // the busy caller's first publish holds the only slot; m-1's batch is then held by the sender for it
      const busy = yield* Effect.forkChild(Effect.forEach([100, 101], (n) => coalescer.publish("d", message(n))))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 1, { within: "2 seconds" })
      const other = yield* Effect.forkChild(coalescer.publish("d", message(1)))
      yield* TestKit.settle()
      yield* Deferred.succeed(gate, undefined) // m-100 confirmed: the busy caller publishes m-101 at once
      yield* Fiber.joinAll([busy, other])
      assert.deepStrictEqual(sent.flat(), ["m-100", "m-1", "m-101"], JSON.stringify(sent))
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a caller interrupted while waiting is not sent; the others are", () =>
    Effect.gen(function*() {
      const { gate, send, sent } = yield* gated
      const scope = yield* Scope.make()
      const coalescer = Coalesce.make(send, { batchSize: 1, capacity: 10, inFlight: 2 }, scope, yield* Effect.context<never>())
      const alone = yield* Effect.forkChild(coalescer.publish("d", message(1)))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 1, { within: "2 seconds" })
      const batched = yield* Effect.forkChild(coalescer.publish("d", message(2)))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 2, { within: "2 seconds" })
      // both slots busy: the sender holds m-3's batch until one frees, m-4 waits in the queue
      const interrupted = yield* Effect.forkChild(coalescer.publish("d", message(3)))
      const last = yield* Effect.forkChild(coalescer.publish("d", message(4)))
      yield* TestKit.eventually(Effect.sync(() => coalescer.waiting("d")), (n) => n === 1, { within: "2 seconds" })
      yield* Fiber.interrupt(interrupted)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual((yield* Fiber.joinAll([alone, batched, last])).map((r) => r.id), ["m-1", "m-2", "m-4"])
      assert.deepStrictEqual(sent, [["m-1"], ["m-2"], ["m-4"]])
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("the waiting queue is bounded: beyond capacity callers wait, then everyone completes in order", () =>
    Effect.gen(function*() {
      const { gate, send, sent } = yield* gated
      const scope = yield* Scope.make()
      const coalescer = Coalesce.make(send, { batchSize: 2, capacity: 3, inFlight: 2 }, scope, yield* Effect.context<never>())
      const fibers = yield* Effect.forEach(
        Array.from({ length: 9 }, (_, n) => n),
        (n) => Effect.forkChild(coalescer.publish("d", message(n))),
        { concurrency: 1 }
      )
      yield* TestKit.eventually(Effect.sync(() => coalescer.waiting("d")), (n) => n === 3, { within: "2 seconds" })
      yield* TestKit.settle()
      assert.strictEqual(coalescer.waiting("d"), 3, "never more than capacity waiting")
      assert.strictEqual(sent.length, 2, "the first caller alone, then one batch in flight")
      assert.isAtMost(sent[1]!.length, 2)
      yield* Deferred.succeed(gate, undefined)
      const receipts = yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(receipts.map((r) => r.id), Array.from({ length: 9 }, (_, n) => `m-${n}`))
      assert.deepStrictEqual(sent.flat(), Array.from({ length: 9 }, (_, n) => `m-${n}`))
      assert.isTrue(sent.every((batch) => batch.length <= 2))
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("closing the publisher's scope interrupts the callers of a batch the sender has in flight", () =>
    Effect.gen(function*() {
      const gates = new Map<string, Deferred.Deferred<void>>()
      const sent: Array<ReadonlyArray<string>> = []
      const send: Coalesce.SendEach = (_, messages) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          for (const m of messages) gates.set(m.id, gate)
          sent.push(messages.map((m) => m.id))
          yield* Deferred.await(gate)
          return messages.map((m) => Result.succeed(receipt(m)))
        })
      const scope = yield* Scope.make()
      const coalescer = Coalesce.make(send, { batchSize: 10, capacity: 4, inFlight: 1 }, scope, yield* Effect.context<never>())
      const alone = yield* Effect.forkChild(coalescer.publish("d", message(1)))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 1, { within: "2 seconds" })
      const batched = yield* Effect.forkChild(coalescer.publish("d", message(2)))
      yield* TestKit.settle() // m-2 found no free slot: taken by the sender, which waits for one
      assert.deepStrictEqual(sent, [["m-1"]])
      yield* Deferred.succeed(gates.get("m-1")!, undefined) // the slot frees: the sender sends [m-2]
      assert.strictEqual((yield* Fiber.join(alone)).id, "m-1")
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 2, { within: "2 seconds" })
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(batched)), "the caller of the interrupted call is interrupted")
    }))

  it.live("closing the publisher's scope interrupts whoever the sender still serves; with a call in flight a caller joins the sender", () =>
    Effect.gen(function*() {
      const { gate, send, sent } = yield* gated
      const scope = yield* Scope.make()
      const coalescer = Coalesce.make(send, { batchSize: 1, capacity: 4, inFlight: 2 }, scope, yield* Effect.context<never>())
      const alone = yield* Effect.forkChild(coalescer.publish("d", message(1)))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 1, { within: "2 seconds" })
      // a call is in flight: m-2 joins the sender, which sends it in the second free slot (in its scope)
      const second = yield* Effect.forkChild(coalescer.publish("d", message(2)))
      yield* TestKit.eventually(Effect.sync(() => sent.length), (n) => n === 2, { within: "2 seconds" })
      // no slot: m-3 is taken by the sender, which waits for a slot; m-4 waits in the queue
      const held = yield* Effect.forkChild(coalescer.publish("d", message(3)))
      const waiting = yield* Effect.forkChild(coalescer.publish("d", message(4)))
      yield* TestKit.eventually(Effect.sync(() => coalescer.waiting("d")), (n) => n === 1, { within: "2 seconds" })
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(second)), "a batch the sender had in flight is interrupted")
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(held)))
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(waiting)))
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual((yield* Fiber.join(alone)).id, "m-1", "a caller sending alone finishes in its own fiber")
      assert.deepStrictEqual(sent, [["m-1"], ["m-2"]], "nothing held or waiting was sent")
    }))
})
