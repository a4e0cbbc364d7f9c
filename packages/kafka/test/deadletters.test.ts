/**
 * Dead-letter operations on Kafka: `browse` (removals recorded in the compacted `<topic>.removed`), `lag`,
 * `serverInfo`, and core's `DeadLetters` (list, count, redrive, purge) end to end on the real broker.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Broker, Consumer, DeadLetters, Errors, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Duration, Effect, Exit, Fiber, Schedule, Schema, Scope, Stream } from "effect"
import { KafkaTopology } from "../src/index.ts"
import { brokers, message, testLayer, text, unique } from "./helpers.ts"

const browseBroker = Effect.gen(function*() {
  const broker = yield* Broker.Broker
  const browse = broker.browse
  if (browse === undefined) return yield* Effect.die("the Kafka broker has no browse")
  return { broker, browse }
})

/** Opens a browse in its own scope, reads it to its end (settling each delivery with `settle`), closes it. */
const browseAll = (
  destination: string,
  settle: (d: Broker.RawDelivery, index: number) => Effect.Effect<void, Errors.AckError> = () => Effect.void,
  prefetch = 64
) =>
  Effect.gen(function*() {
    const { browse } = yield* browseBroker
    const scope = yield* Scope.make()
    const opened = yield* browse(destination, { prefetch }).pipe(Scope.provide(scope))
    const seen = yield* opened.deliveries.pipe(
      Stream.zipWithIndex,
      Stream.mapEffect(([d, i]) => Effect.as(settle(d, i), d)),
      Stream.runCollect,
      Effect.timeout("30 seconds")
    )
    yield* Scope.close(scope, Exit.void)
    return { retained: opened.retained, texts: seen.map((d) => text(d.envelope.payload)).sort(), deliveries: seen }
  })

const browseGroupsLeft = (destination: string) =>
  Effect.gen(function*() {
    const { admin } = yield* KafkaTopology.KafkaTopology
    const { groups } = yield* Effect.promise(() => admin.listGroups())
    return groups.filter((g) => g.groupId.startsWith(`switchyard-browse-${destination}-`)).map((g) => g.groupId)
  })

const sorted = (xs: Iterable<string>) => [...xs].sort()

/** Repeats `effect` until `done` holds of its result (fails after `limit`). */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean, limit: Duration.Input = "60 seconds") =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: done }),
    Effect.timeout(limit)
  )

const lagOf = (destination: string, group: string) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    return yield* broker.lag!(destination, group)
  })

describe("kafka: dead-letter operations", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("browse reads every record retained at open, whichever partition, and ends with them; reading removes nothing", () =>
      Effect.gen(function*() {
        const { broker, browse } = yield* browseBroker
        const destination = unique("orders.dlq")
        const texts = Array.from({ length: 12 }, (_, i) => `payload-${i}`)
        yield* broker.publish(destination, texts.map((_, i) => message(i)))
        const opened = yield* browse(destination, { prefetch: 3 })
        assert.strictEqual(opened.retained, 12)
        // published after the browse opened: not part of it
        yield* broker.publish(destination, [message(100)])
        // (at most `prefetch` unsettled at once: nack each to read on)
        const seen = yield* opened.deliveries.pipe(Stream.tap((d) => d.nack()), Stream.runCollect, Effect.timeout("30 seconds"))
        assert.deepStrictEqual(sorted(seen.map((d) => text(d.envelope.payload))), sorted(texts))
        assert.deepStrictEqual(sorted(seen.map((d) => d.envelope.id)), sorted(texts.map((_, i) => `m-${i}`)))
        assert.isTrue(seen.every((d) => d.envelope.coordinates.partition !== undefined && d.envelope.coordinates.offset !== undefined))
        // a second read still sees all 13 (nothing was settled)
        const again = yield* browseAll(destination)
        assert.strictEqual(again.retained, 13)
        assert.strictEqual(again.deliveries.length, 13)
      }))

    it.effect("ack removes a record for every later browse; nack and unsettled keep it; no browse group is left behind", () =>
      Effect.gen(function*() {
        const { broker } = yield* browseBroker
        const destination = unique("orders.dlq")
        yield* broker.publish(destination, Array.from({ length: 9 }, (_, i) => message(i)))
        // by payload: 0, 3, 6 acked; 1, 4, 7 nacked; 2, 5, 8 left unsettled
        const first = yield* browseAll(destination, (d) => {
          const n = Number(text(d.envelope.payload).slice("payload-".length))
          return n % 3 === 0 ? d.ack : n % 3 === 1 ? d.nack() : Effect.void
        })
        assert.strictEqual(first.retained, 9)
        assert.strictEqual(first.deliveries.length, 9)
        // a second settlement of a settled delivery changes nothing (an ack after a nack included)
        yield* first.deliveries.find((d) => text(d.envelope.payload) === "payload-0")!.ack
        yield* first.deliveries.find((d) => text(d.envelope.payload) === "payload-4")!.ack
        const second = yield* browseAll(destination, (d) => (text(d.envelope.payload) === "payload-1" ? d.ack : Effect.void))
        assert.strictEqual(second.retained, 6)
        assert.deepStrictEqual(second.texts, ["payload-1", "payload-2", "payload-4", "payload-5", "payload-7", "payload-8"])
        const third = yield* browseAll(destination, (d) => d.ack)
        assert.strictEqual(third.retained, 5)
        assert.deepStrictEqual(third.texts, ["payload-2", "payload-4", "payload-5", "payload-7", "payload-8"])
        const last = yield* browseAll(destination)
        assert.strictEqual(last.retained, 0)
        assert.deepStrictEqual(last.texts, [])
        // the removals are records of the compacted companion topic, the destination itself is untouched
        const { admin } = yield* KafkaTopology.KafkaTopology
        const ends = yield* Effect.promise(() => admin.fetchTopicOffsets(destination))
        assert.strictEqual(ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0), 9)
        const configs = yield* Effect.promise(() =>
          admin.describeConfigs({ resources: [{ type: 2, name: `${destination}.removed`, configNames: ["cleanup.policy"] }], includeSynonyms: false })
        )
        assert.strictEqual(configs.resources[0]?.configEntries[0]?.configValue, "compact")
        assert.deepStrictEqual(yield* browseGroupsLeft(destination), [])
      }))

    it.effect("records deleted (retention, deleteRecords) after the browse opened and before they were fetched: the browse still ends", () =>
      Effect.gen(function*() {
        const { broker, browse } = yield* browseBroker
        const { admin } = yield* KafkaTopology.KafkaTopology
        const destination = unique("expired.dlq")
        yield* broker.publish(destination, Array.from({ length: 8 }, (_, i) => message(i)))
        const opened = yield* browse(destination, { prefetch: 16 })
        assert.strictEqual(opened.retained, 8)
        const ends = yield* Effect.promise(() => admin.fetchTopicOffsets(destination))
        yield* Effect.promise(() =>
          admin.deleteTopicRecords({ topic: destination, partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })) })
        )
        const seen = yield* opened.deliveries.pipe(Stream.tap((d) => d.nack()), Stream.runCollect, Effect.timeout("30 seconds"))
        assert.isAtMost(seen.length, 8)
        const after = yield* browseAll(destination)
        assert.strictEqual(after.retained, 0)
        assert.deepStrictEqual(after.texts, [])
      }))

    it.effect("browse of a topic that does not exist is empty and creates nothing", () =>
      Effect.gen(function*() {
        const { admin } = yield* KafkaTopology.KafkaTopology
        const destination = unique("nothing.dlq")
        const read = yield* browseAll(destination)
        assert.strictEqual(read.retained, 0)
        assert.deepStrictEqual(read.texts, [])
        const topics = yield* Effect.promise(() => admin.listTopics())
        assert.isFalse(topics.includes(destination))
        assert.isFalse(topics.includes(`${destination}.removed`))
      }))

    it.effect("lag: end offsets minus the group's commits (uncommitted partitions from the earliest); serverInfo", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("lag")
        const group = unique("g")
        yield* broker.publish(destination, Array.from({ length: 20 }, (_, i) => message(i)))
        assert.strictEqual(yield* lagOf(destination, group), 20)
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* broker.subscribe(destination, { group, prefetch: 100, startFrom: "earliest" })
          yield* sub.deliveries.pipe(Stream.take(20), Stream.mapEffect((d) => d.ack), Stream.runDrain, Effect.timeout("30 seconds"))
        }))
        // the final commit happened when the subscription closed
        assert.strictEqual(yield* lagOf(destination, group), 0)
        yield* broker.publish(destination, Array.from({ length: 7 }, (_, i) => message(20 + i)))
        assert.strictEqual(yield* lagOf(destination, group), 7)
        const missing = yield* Effect.flip(lagOf(unique("missing"), group))
        assert.strictEqual(missing._tag, "SubscribeError")

        const info = yield* broker.serverInfo!
        assert.strictEqual(info.product, "Apache Kafka")
        assert.isString(info.version)
        assert.isTrue((info.details["clusterId"] ?? "").length > 0)
        assert.include(info.details["brokers"] ?? "", `:${brokers().split(":").pop()}`)
      }))
  })

  const Order = Schema.Struct({ n: Schema.Number })

  layer(Switchyard.on(testLayer()), { excludeTestServices: true, timeout: Duration.minutes(4) })((it) => {
    it.effect("two groups: list by reason and group, redrive billing's only (only billing reprocesses), purge shipping's; nothing lost or stuck", () =>
      Effect.gen(function*() {
        const name = unique("orders")
        const orders = Topic.make(name, Order, { key: (o) => String(o.n) })
        const billing = unique("billing")
        const shipping = unique("shipping")
        let billingFixed = false
        const billingHandled = new Map<number, string>()
        const billingFailedIds = new Map<number, string>()
        const shippingHandled: Array<number> = []
        const billingRun = yield* Consumer.run(orders, (o, envelope) =>
          Effect.suspend(() => {
            if (o.n % 2 === 0 && !billingFixed) {
              billingFailedIds.set(o.n, envelope.id)
              return Effect.die(new Error("billing service down"))
            }
            billingHandled.set(o.n, envelope.id)
            return Effect.void
          }), { group: billing, concurrency: 4, idempotency: true }).pipe(Effect.forkChild)
        const shippingRun = yield* Consumer.run(orders, (o) =>
          Effect.suspend(() => {
            if (o.n % 3 === 0) return Effect.die(new Error("no such address"))
            shippingHandled.push(o.n)
            return Effect.void
          }), { group: shipping, concurrency: 4, idempotency: true }).pipe(Effect.forkChild)

        yield* Effect.forEach(Array.from({ length: 30 }, (_, n) => n), (n) => Publisher.publish(orders, { n }), { discard: true })
        // billing dead-letters the 15 even ones, shipping the 10 multiples of 3
        const counts = yield* eventually(DeadLetters.count(orders), (c) => c.total >= 25)
        assert.strictEqual(counts.total, 25)
        assert.deepStrictEqual(counts.byGroup, { [billing]: 15, [shipping]: 10 })
        assert.deepStrictEqual(counts.byErrorTag, { Defect: 25 })

        const billingLetters = yield* DeadLetters.list(orders, { group: billing }).pipe(Stream.runCollect)
        assert.deepStrictEqual(
          billingLetters.map((dl) => (dl.value._tag === "Success" ? dl.value.success.n : -1)).sort((a, b) => a - b),
          Array.from({ length: 15 }, (_, i) => i * 2)
        )
        assert.isTrue(billingLetters.every((dl) => dl.reason.includes("billing service down") && dl.originDestination === name))
        const byReason = yield* DeadLetters.count(orders, { reason: "no such address" })
        assert.strictEqual(byReason.total, 10)

        // the fix is deployed: redrive billing's dead letters only
        billingFixed = true
        const summary = yield* DeadLetters.redrive(orders, { group: billing })
        assert.strictEqual(summary.retained, 25)
        assert.strictEqual(summary.matched, 15)
        assert.strictEqual(summary.redriven, 15)
        assert.strictEqual(summary.kept, 10)
        yield* eventually(Effect.sync(() => billingHandled.size), (n) => n === 30)
        // the redriven copies kept the original ids
        for (const [n, id] of billingFailedIds) assert.strictEqual(billingHandled.get(n), id)
        // both groups consumed everything (the 15 copies too), and shipping handled none of the copies
        yield* eventually(lagOf(name, billing), (n) => n === 0)
        yield* eventually(lagOf(name, shipping), (n) => n === 0)
        assert.strictEqual(shippingHandled.length, 20)
        const after = yield* DeadLetters.count(orders)
        assert.deepStrictEqual(after.byGroup, { [shipping]: 10 })

        const purged = yield* DeadLetters.purge(orders, { group: shipping })
        assert.strictEqual(purged.purged, 10)
        assert.strictEqual((yield* DeadLetters.count(orders)).total, 0)
        yield* Fiber.interrupt(billingRun)
        yield* Fiber.interrupt(shippingRun)
      }))

    it.effect("a 10,000-message redrive: every dead letter back at its origin and handled once, nothing lost, rate printed", () =>
      Effect.gen(function*() {
        const total = 10_000
        const name = unique("bulk")
        const orders = Topic.make(name, Order, { key: (o) => String(o.n % 64) })
        const group = unique("g")
        let fixed = false
        const handled = new Set<number>()
        let invocations = 0
        const run = yield* Consumer.run(orders, (o) =>
          Effect.suspend(() => {
            if (!fixed) return Effect.die(new Error("downstream unavailable"))
            invocations++
            handled.add(o.n)
            return Effect.void
          }), { group, concurrency: 16, idempotency: true }).pipe(Effect.forkChild)
        const publishStart = Date.now()
        yield* Stream.range(0, total - 1).pipe(
          Stream.grouped(500),
          Stream.mapEffect((chunk) => Publisher.publishAll(orders, chunk.map((n) => ({ n })))),
          Stream.runDrain
        )
        const dead = yield* eventually(DeadLetters.count(orders), (c) => c.total >= total, "120 seconds")
        assert.strictEqual(dead.total, total)
        console.log(`kafka: ${total} dead letters parked in ${Date.now() - publishStart} ms`)

        fixed = true
        const summary = yield* DeadLetters.redrive(orders, {})
        console.log(
          `kafka: redrive of ${summary.retained} retained: ${summary.redriven} redriven, ${summary.kept} kept, ` +
            `${summary.notRemoved} not removed in ${summary.elapsedMillis} ms = ${summary.ratePerSecond.toFixed(0)} msg/s`
        )
        assert.strictEqual(summary.retained, total)
        assert.strictEqual(summary.redriven, total)
        assert.strictEqual(summary.kept, 0)
        assert.strictEqual(summary.notRemoved, 0)
        yield* eventually(Effect.sync(() => handled.size), (n) => n === total, "120 seconds")
        assert.strictEqual(handled.size, total)
        yield* eventually(lagOf(name, group), (n) => n === 0)
        assert.strictEqual(invocations, total)
        const left = yield* DeadLetters.count(orders)
        assert.strictEqual(left.total, 0)
        yield* Fiber.interrupt(run)
      }))
  })
})
