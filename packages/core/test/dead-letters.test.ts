/**
 * `DeadLetters` on the in-memory broker, under TestClock (installed by `it.effect`): list and count dead letters
 * parked by two groups, redrive with a filter so only the failing group reprocesses them, purge, dry runs,
 * limits, rate limiting, a failed republish that must lose nothing, and a broker without `browse`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Metric, References, Result, Schema, Stream } from "effect"
import {
  Broker,
  Consumer,
  DeadLetters,
  Envelope,
  Errors,
  Headers as H,
  MemoryBroker,
  Publisher,
  Switchyard,
  Telemetry,
  Topic
} from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"

const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, References.MinimumLogLevel, "None")
const memory = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Switchyard.layerMemory({ partitions: 4 })), quiet)

const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })
const orders = Topic.make("orders", Order, { key: (o) => o.id })

class Declined extends Schema.TaggedError<Declined>()("Declined", { id: Schema.String }) {
  override get message(): string {
    return `declined ${this.id}`
  }
}

/**
 * Two groups with idempotency on: "a" fails ids divisible by 3, "b" ids divisible by 5 (15 fails in both).
 * Records every handler run per group; `failing` can be switched off (the fix) before a redrive.
 */
const twoGroups = Effect.gen(function*() {
  const runs = { a: [] as Array<string>, b: [] as Array<string> }
  const fixed = { a: false, b: false }
  const handler = (group: "a" | "b", divisor: number) => (order: typeof Order.Type) =>
    Effect.suspend(() => {
      runs[group].push(order.id)
      return !fixed[group] && order.n % divisor === 0 ? Effect.fail(new Declined({ id: order.id })) : Effect.void
    })
  const a = yield* Consumer.start(orders, handler("a", 3), { group: "a", idempotency: true })
  const b = yield* Consumer.start(orders, handler("b", 5), { group: "b", idempotency: true })
  return { runs, fixed, fibers: [a, b] as const }
})

const publishOrders = (count: number) =>
  Publisher.publishMessages(
    orders,
    Array.from({ length: count }, (_, n) => ({ value: { id: `o-${n + 1}`, n: n + 1 }, options: { id: `o-${n + 1}` } }))
  )

const ids = (from: ReadonlyArray<number>) => from.map((n) => `o-${n}`).sort()
const range = (count: number) => Array.from({ length: count }, (_, n) => n + 1)

describe("DeadLetters on the in-memory broker", () => {
  it.effect("lists and counts dead letters of two groups with reasons and origin; redrive({ group: 'a' }) reprocesses only a's; purge empties b's", () =>
    Effect.gen(function*() {
      const { runs, fixed } = yield* twoGroups
      yield* publishOrders(30)
      yield* TestKit.settle()
      assert.strictEqual(runs.a.length, 30)
      assert.strictEqual(runs.b.length, 30)

      const listed = yield* Stream.runCollect(DeadLetters.list(orders))
      assert.strictEqual(listed.length, 10 + 6)
      const byGroup = (group: string) => listed.filter((dl) => dl.originGroup === group).map((dl) => dl.original.id).sort()
      assert.deepStrictEqual(byGroup("a"), ids(range(30).filter((n) => n % 3 === 0)))
      assert.deepStrictEqual(byGroup("b"), ids(range(30).filter((n) => n % 5 === 0)))
      for (const dl of listed) {
        assert.strictEqual(dl.errorTag, "Declined")
        assert.include(dl.reason, dl.original.id)
        assert.strictEqual(dl.attempts, 1)
        assert.strictEqual(dl.originDestination, "orders")
        assert.strictEqual(dl.form, "full")
        assert.isTrue(dl.isDeadLetter)
        assert.isTrue(dl.redrivable)
        assert.isTrue(Result.isSuccess(dl.value))
        assert.strictEqual(Result.isSuccess(dl.value) ? dl.value.success.id : "", dl.original.id)
        assert.strictEqual(dl.envelope.id, `${dl.original.id}.dlq.${dl.originGroup}`)
        assert.strictEqual(dl.original.key, dl.original.id)
        assert.include(dl.originCoordinates, "\"destination\":\"orders\"")
        assert.isUndefined(Object.keys(dl.original.headers).find((h) => h.startsWith("x-switchyard-dlq-")))
      }
      const onlyA = yield* Stream.runCollect(DeadLetters.list(orders, { group: "a", limit: 4 }))
      assert.strictEqual(onlyA.length, 4)
      assert.isTrue(onlyA.every((dl) => dl.originGroup === "a"))

      const counts = yield* DeadLetters.count(orders)
      assert.strictEqual(counts.total, 16)
      assert.deepStrictEqual(counts.byGroup, { a: 10, b: 6 })
      assert.deepStrictEqual(counts.byErrorTag, { Declined: 16 })
      assert.strictEqual((yield* DeadLetters.count(orders, { id: "o-15" })).total, 2)

      // The fix for group "a" ships; then a's dead letters are redriven.
      fixed.a = true
      const before = { a: runs.a.length, b: runs.b.length }
      const progress: Array<DeadLetters.Progress> = []
      const summary = yield* DeadLetters.redrive(orders, {
        group: "a",
        onProgress: (p) => Effect.sync(() => progress.push(p))
      })
      assert.strictEqual(summary.retained, 16)
      assert.strictEqual(summary.seen, 16)
      assert.strictEqual(summary.matched, 10)
      assert.strictEqual(summary.redriven, 10)
      assert.strictEqual(summary.kept, 6)
      assert.strictEqual(summary.notRemoved, 0)
      assert.isFalse(summary.dryRun)
      assert.strictEqual(Object.values(summary.byReason).reduce((x, y) => x + y, 0), 10)
      assert.deepStrictEqual(progress.at(-1), { retained: 16, seen: 16, matched: 10, done: 10, elapsedMillis: 0 })
      yield* TestKit.settle()
      // Only "a" ran them again, each once, though its ledger had the ids; "b" handled none again.
      assert.deepStrictEqual(runs.a.slice(before.a).sort(), ids(range(30).filter((n) => n % 3 === 0)))
      assert.strictEqual(runs.b.length, before.b)

      const left = yield* Stream.runCollect(DeadLetters.list(orders))
      assert.deepStrictEqual(left.map((dl) => dl.originGroup), Array(6).fill("b"))
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.strictEqual((yield* inspect.deadLetters("orders")).length, 6)
      assert.strictEqual(yield* inspect.lag("orders", "a"), 0)
      assert.strictEqual(yield* inspect.lag("orders", "b"), 0)

      const dry = yield* DeadLetters.purge(orders, { group: "b", dryRun: true })
      assert.deepStrictEqual([dry.matched, dry.purged, dry.kept, dry.dryRun], [6, 6, 6, true])
      assert.strictEqual((yield* DeadLetters.count(orders)).total, 6)
      const purged = yield* DeadLetters.purge(orders, { group: "b" })
      assert.deepStrictEqual([purged.retained, purged.matched, purged.purged, purged.kept], [6, 6, 6, 0])
      assert.strictEqual((yield* DeadLetters.count(orders)).total, 0)
      assert.strictEqual((yield* inspect.deadLetters("orders")).length, 0)
    }).pipe(memory))

  it.effect("a dry run publishes and removes nothing", () =>
    Effect.gen(function*() {
      const { runs } = yield* twoGroups
      yield* publishOrders(15)
      yield* TestKit.settle()
      const inspect = yield* MemoryBroker.MemoryBroker
      const published = yield* inspect.publishedCount("orders")
      const summary = yield* DeadLetters.redrive(orders, { dryRun: true })
      assert.deepStrictEqual([summary.matched, summary.redriven, summary.kept, summary.dryRun], [5 + 3, 8, 8, true])
      yield* TestKit.settle()
      assert.strictEqual(yield* inspect.publishedCount("orders"), published)
      assert.strictEqual((yield* DeadLetters.count(orders)).total, 8)
      assert.strictEqual(runs.a.length + runs.b.length, 30)
    }).pipe(memory))

  it.effect("a redriven copy dead-lettered again is parked again (with a fresh dedup id), not lost", () => {
    const parked: Array<Envelope.OutgoingMessage> = []
    const recording = Switchyard.on(MemoryBroker.layerWrapped((broker) => ({
      ...broker,
      publish: (destination, messages) =>
        Effect.andThen(
          Effect.sync(() => destination === "orders.dlq" && parked.push(...messages)),
          broker.publish(destination, messages)
        )
    })))
    return Effect.gen(function*() {
      const { runs } = yield* twoGroups
      yield* publishOrders(6)
      yield* TestKit.settle()
      assert.strictEqual((yield* DeadLetters.count(orders, { group: "a" })).total, 2)
      // Not fixed: group "a" fails them again.
      const summary = yield* DeadLetters.redrive(orders, { group: "a" })
      assert.strictEqual(summary.redriven, 2)
      yield* TestKit.settle()
      assert.strictEqual(runs.a.filter((id) => id === "o-3").length, 2)
      const again = yield* Stream.runCollect(DeadLetters.list(orders, { group: "a" }))
      assert.deepStrictEqual(again.map((dl) => dl.original.id).sort(), ["o-3", "o-6"])
      for (const dl of again) {
        assert.isUndefined(dl.envelope.headers[H.redriveGroup])
        assert.isDefined(dl.envelope.headers[H.redrivenAt])
      }
      // First dead letters carry no dedup id; the second ones of the same id and group a fresh one.
      const ofO3 = parked.filter((m) => m.id === "o-3.dlq.a")
      assert.strictEqual(ofO3.length, 2)
      assert.isUndefined(ofO3[0]!.dedupId)
      assert.isDefined(ofO3[1]!.dedupId)
      assert.notStrictEqual(ofO3[1]!.dedupId, ofO3[1]!.id)
    }).pipe(Effect.provide(recording), quiet)
  })

  it.effect("limit redrives at most that many; the rest stays", () =>
    Effect.gen(function*() {
      const { fixed } = yield* twoGroups
      yield* publishOrders(30)
      yield* TestKit.settle()
      fixed.a = true
      const summary = yield* DeadLetters.redrive(orders, { group: "a", limit: 3 })
      assert.strictEqual(summary.redriven, 3)
      assert.strictEqual((yield* DeadLetters.count(orders, { group: "a" })).total, 7)
      assert.strictEqual((yield* DeadLetters.count(orders, { group: "b" })).total, 6)
    }).pipe(memory))

  it.effect("rate caps republishes per second (virtual time), with progress on the way", () =>
    Effect.gen(function*() {
      const { fixed } = yield* twoGroups
      yield* publishOrders(90)
      yield* TestKit.settle()
      fixed.a = true
      const progress: Array<DeadLetters.Progress> = []
      const fiber = yield* DeadLetters.redrive(orders, {
        group: "a",
        rate: 10,
        onProgress: (p) => Effect.sync(() => progress.push(p))
      }).pipe(Effect.forkChild)
      yield* TestKit.advance("1 second", "5 millis")
      const afterOneSecond = (yield* DeadLetters.count(orders, { group: "a" })).total
      // 30 dead letters of "a" at 10 per second: about 10 gone after one second, far from all 30.
      assert.isAtLeast(30 - afterOneSecond, 9)
      assert.isAtMost(30 - afterOneSecond, 11)
      yield* TestKit.advance("3 seconds", "5 millis")
      const summary = yield* Fiber.join(fiber)
      assert.strictEqual(summary.redriven, 30)
      assert.isAtLeast(summary.elapsedMillis, 2800)
      assert.isAtMost(summary.ratePerSecond, 11)
      assert.strictEqual((yield* DeadLetters.count(orders, { group: "a" })).total, 0)
      assert.isAtLeast(progress.length, 2)
    }).pipe(memory))

  it.effect("messages that are not Switchyard dead letters are reported as such and never redriven", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish("orders.dlq", [
        Envelope.outgoing(new TextEncoder().encode(JSON.stringify({ id: "x", n: 1 })), { id: "stray", contentType: "application/json" })
      ])
      const [stray] = yield* Stream.runCollect(DeadLetters.list(orders))
      assert.strictEqual(stray?.reason, DeadLetters.notADeadLetter)
      assert.isFalse(stray?.isDeadLetter)
      assert.isFalse(stray?.redrivable)
      const summary = yield* DeadLetters.redrive(orders)
      assert.deepStrictEqual([summary.matched, summary.redriven, summary.unredrivable, summary.kept], [1, 0, 1, 1])
      assert.deepStrictEqual(summary.byReason, { [DeadLetters.notADeadLetter]: 1 })
      assert.strictEqual((yield* DeadLetters.count(orders)).total, 1)
    }).pipe(memory))

  it.effect("a republish the broker does not confirm leaves the dead letters and fails with the PublishError", () =>
    Effect.gen(function*() {
      const { runs } = yield* twoGroups
      yield* publishOrders(9)
      yield* TestKit.settle()
      const error = yield* DeadLetters.redrive(orders, { group: "a" }).pipe(
        Effect.provideServiceEffect(
          Broker.Broker,
          Effect.map(Broker.Broker, (broker) => ({
            ...broker,
            publish: (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>) =>
              destination === "orders"
                ? Effect.fail(new Errors.PublishError({ destination, reason: Errors.reason("Unreachable", "broker down") }))
                : broker.publish(destination, messages)
          }))
        ),
        Effect.flip
      )
      assert.strictEqual(error._tag, "PublishError")
      yield* TestKit.settle()
      assert.strictEqual((yield* DeadLetters.count(orders, { group: "a" })).total, 3)
      assert.strictEqual(runs.a.length, 9)
    }).pipe(memory))

  it.effect("a broker without browse fails with a typed SubscribeError saying it keeps no dead letters", () =>
    Effect.gen(function*() {
      const error = yield* DeadLetters.count(orders).pipe(
        Effect.provideServiceEffect(
          Broker.Broker,
          Effect.map(Broker.Broker, (broker) => ({ ...broker, browse: undefined }))
        ),
        Effect.flip
      )
      assert.strictEqual(error._tag, "SubscribeError")
      assert.strictEqual(error.kind, "NotFound")
      assert.include(error.reason.message, "keeps no dead letters")
    }).pipe(memory))
})

describe("Consumer and redriven copies", () => {
  const copy = (id: string, group: string) =>
    Envelope.outgoing(new TextEncoder().encode(JSON.stringify({ id, n: 1 })), {
      id,
      key: id,
      contentType: "application/json",
      headers: { [H.redriveGroup]: group, [H.redrivenAt]: "1" }
    })

  it.effect("another group acks a copy meant for one group without running its handler; the named group runs it though its ledger has the id", () =>
    Effect.gen(function*() {
      const runs: Array<string> = []
      const outcomes: Array<string> = []
      const broker = yield* Broker.Broker
      yield* Consumer.start(orders, (o) => Effect.sync(() => runs.push(`a:${o.id}`)), { group: "a", idempotency: true })
      yield* Consumer.start(orders, (o) => Effect.sync(() => runs.push(`b:${o.id}`)), { group: "b", idempotency: true })
      yield* Publisher.publish(orders, { id: "o-1", n: 1 }, { id: "o-1" })
      yield* TestKit.settle()
      assert.deepStrictEqual(runs.sort(), ["a:o-1", "b:o-1"])
      // A plain duplicate is skipped by both (idempotency), a copy for "a" runs in "a" only.
      yield* broker.publish("orders", [Envelope.outgoing(new TextEncoder().encode(JSON.stringify({ id: "o-1", n: 1 })), { id: "o-1", key: "o-1", contentType: "application/json" })])
      yield* broker.publish("orders", [copy("o-1", "a")])
      yield* TestKit.settle()
      assert.deepStrictEqual(runs.sort(), ["a:o-1", "a:o-1", "b:o-1"])
      // Then remembered as usual: the same id again (without the header) is a duplicate.
      yield* Publisher.publish(orders, { id: "o-1", n: 1 }, { id: "o-1" })
      yield* TestKit.settle()
      assert.strictEqual(runs.length, 3)
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.strictEqual(yield* inspect.lag("orders", "a"), 0)
      assert.strictEqual(yield* inspect.lag("orders", "b"), 0)
      outcomes.push("ok")
      assert.deepStrictEqual(outcomes, ["ok"])
    }).pipe(memory))

  it.effect("with idempotency, the same redriven copy delivered twice runs once; a later redrive of the id runs again", () =>
    Effect.gen(function*() {
      const runs: Array<string> = []
      const broker = yield* Broker.Broker
      yield* Consumer.start(orders, (o) => Effect.sync(() => runs.push(o.id)), { group: "a", idempotency: true })
      yield* broker.publish("orders", [copy("o-5", "a"), copy("o-5", "a")])
      yield* TestKit.settle()
      assert.deepStrictEqual(runs, ["o-5"])
      const later = copy("o-5", "a")
      yield* broker.publish("orders", [{ ...later, headers: { ...later.headers, [H.redrivenAt]: "2" } }])
      yield* TestKit.settle()
      assert.deepStrictEqual(runs, ["o-5", "o-5"])
    }).pipe(memory))

  it.effect("without idempotency, a copy for the group runs; a copy for another group is ignored and counted", () =>
    Effect.gen(function*() {
      const runs: Array<string> = []
      const broker = yield* Broker.Broker
      const ignoredBefore = (yield* Metric.value(Telemetry.redrivesIgnored)).count
      yield* Consumer.start(orders, (o) => Effect.sync(() => runs.push(o.id)), { group: "c" })
      yield* broker.publish("orders", [copy("o-7", "c"), copy("o-8", "elsewhere"), copy("o-9", "c")])
      yield* TestKit.settle()
      assert.deepStrictEqual(runs.sort(), ["o-7", "o-9"])
      assert.strictEqual((yield* Metric.value(Telemetry.redrivesIgnored)).count - ignoredBefore, 1)
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.strictEqual(yield* inspect.lag("orders", "c"), 0)
    }).pipe(memory))
})

describe("MemoryBroker browse, lag and serverInfo", () => {
  it.effect("browse is a snapshot that ends; ack removes for every reader, nack leaves; lag and serverInfo", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const inspect = yield* MemoryBroker.MemoryBroker
      const encode = (s: string) => new TextEncoder().encode(s)
      yield* broker.publish("parking", Array.from({ length: 10 }, (_, n) => Envelope.outgoing(encode(`m${n}`), { id: `m${n}`, key: `k${n}` })))
      assert.strictEqual(yield* broker.lag!("parking", "g"), 10)
      const removed = yield* Effect.scoped(Effect.gen(function*() {
        const browse = yield* broker.browse!("parking", { prefetch: 3 })
        assert.strictEqual(browse.retained, 10)
        // Published after opening: not part of this read.
        yield* broker.publish("parking", [Envelope.outgoing(encode("late"), { id: "late" })])
        return yield* browse.deliveries.pipe(
          Stream.mapEffect((d) => Number(d.envelope.id.slice(1)) % 2 === 0 ? Effect.as(d.ack, [d.envelope.id]) : Effect.as(d.nack(), [])),
          Stream.runCollect,
          Effect.map((chunks) => chunks.flat())
        )
      }))
      assert.deepStrictEqual([...removed].sort(), ["m0", "m2", "m4", "m6", "m8"])
      const left = (yield* inspect.published("parking")).map((e) => e.id).sort()
      assert.deepStrictEqual(left, ["late", "m1", "m3", "m5", "m7", "m9"])
      assert.strictEqual(yield* broker.lag!("parking", "g"), 6)
      // A group reading afterwards gets only what is left.
      const got = yield* Effect.scoped(Effect.gen(function*() {
        const sub = yield* broker.subscribe("parking", { group: "g", prefetch: 100, startFrom: "earliest" })
        return yield* sub.deliveries.pipe(Stream.take(6), Stream.mapEffect((d) => Effect.as(d.ack, d.envelope.id)), Stream.runCollect)
      }))
      assert.deepStrictEqual([...got].sort(), left)
      assert.strictEqual(yield* broker.lag!("parking", "g"), 0)
      const info = yield* broker.serverInfo!
      assert.strictEqual(info.product, "Switchyard in-memory broker")
      assert.strictEqual(info.details["partitions"], "4")
    }).pipe(memory))

  it.effect("browse holds at most prefetch deliveries unsettled", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish("parking2", Array.from({ length: 5 }, (_, n) => Envelope.outgoing(new Uint8Array([n]), { id: `m${n}` })))
      yield* Effect.scoped(Effect.gen(function*() {
        const browse = yield* broker.browse!("parking2", { prefetch: 2 })
        const taken: Array<Broker.RawDelivery> = []
        const fiber = yield* browse.deliveries.pipe(Stream.runForEach((d) => Effect.sync(() => taken.push(d))), Effect.forkChild)
        yield* TestKit.settle()
        assert.strictEqual(taken.length, 2)
        yield* taken[0]!.ack
        yield* TestKit.settle()
        assert.strictEqual(taken.length, 3)
        yield* Effect.forEach(taken.slice(1), (d) => d.nack(), { discard: true })
        yield* TestKit.settle()
        assert.strictEqual(taken.length, 5)
        yield* Effect.forEach(taken.slice(3), (d) => d.ack, { discard: true })
        yield* Fiber.join(fiber)
        const inspect = yield* MemoryBroker.MemoryBroker
        const nacked = taken.slice(1, 3).map((d) => d.envelope.id).sort()
        assert.deepStrictEqual((yield* inspect.published("parking2")).map((e) => e.id).sort(), nacked)
      }))
    }).pipe(memory))
})
