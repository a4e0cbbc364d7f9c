import { assert, describe, layer } from "@effect/vitest"
import { Broker, Consumer, DeadLetters, Errors, Headers, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Data, Effect, Exit, Layer, Ref, References, Result, Schema, Scope, Stream } from "effect"
import { NatsBroker, NatsTopology } from "../src/index.ts"
import { message, servers, subscribeOptions, take, text, unique } from "./helpers.ts"
import { eventually } from "./raw.ts"

const live = NatsBroker.layer({
  connection: { servers, name: "switchyard-nats-deadletters-test" },
  defaultStream: { storage: "memory", maxAge: "15 minutes" },
  // One declared stream holding several subjects: a browse of one of them must count and read only it.
  streams: [{ name: "SY_DLQ_SHARED", subjects: ["sy.shared.>"], storage: "memory", maxAge: "15 minutes" }],
  consumer: { ackWait: "5 seconds", inactiveThreshold: "5 minutes" }
})

const browseBroker = Effect.gen(function*() {
  const broker = yield* Broker.Broker
  const browse = broker.browse
  if (browse === undefined) return yield* Effect.die("the JetStream broker has no browse")
  return { broker, browse }
})

/** Opens a browse in its own scope, collects every delivery (settling each with `settle`), closes the scope. */
const browseAll = (
  destination: string,
  settle: (d: Broker.RawDelivery, index: number) => Effect.Effect<void, Errors.AckError> = () => Effect.void
) =>
  Effect.gen(function*() {
    const { browse } = yield* browseBroker
    const scope = yield* Scope.make()
    const opened = yield* browse(destination, { prefetch: 16 }).pipe(Scope.provide(scope))
    const seen = yield* opened.deliveries.pipe(
      Stream.zipWithIndex,
      Stream.mapEffect(([d, i]) => Effect.as(settle(d, i), d)),
      Stream.runCollect,
      Effect.timeout("20 seconds")
    )
    yield* Scope.close(scope, Exit.void)
    return { retained: opened.retained, texts: seen.map(text), deliveries: seen }
  })

const storedOf = (destination: string) =>
  Effect.gen(function*() {
    const js = yield* NatsTopology.NatsTopology
    const stream = yield* js.streamFor(destination)
    const info = yield* Effect.promise(() => js.manager.streams.info(stream, { subjects_filter: destination }))
    return info.state.subjects?.[destination] ?? 0
  })

describe("JetStream dead-letter operations (browse, dedupId, lag, serverInfo)", () => {
  layer(live, { timeout: "60 seconds", excludeTestServices: true })((it) => {
    it.effect("browse reads every retained message, outside the groups' competition, and ends with them", () =>
      Effect.gen(function*() {
        const { broker, browse } = yield* browseBroker
        const destination = unique("sy.dlq")
        yield* broker.publish(destination, ["a", "b", "c", "d", "e"].map((t) => message(t)))
        // A group holds all five unacknowledged: a browse still sees every one of them.
        const group = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        assert.deepStrictEqual((yield* take(group, 5, { ack: false })).map(text), ["a", "b", "c", "d", "e"])
        const opened = yield* browse(destination, { prefetch: 2 })
        assert.strictEqual(opened.retained, 5)
        // Stored after the browse opened: not part of it.
        yield* broker.publish(destination, [message("late")])
        const seen = yield* opened.deliveries.pipe(Stream.runCollect, Effect.timeout("20 seconds"))
        assert.deepStrictEqual(seen.map(text), ["a", "b", "c", "d", "e"])
        assert.deepStrictEqual(seen.map((d) => d.envelope.coordinates.sequence), [1, 2, 3, 4, 5])
        assert.isTrue(seen.every((d) => NatsBroker.isJetStreamCoordinates(d.envelope.coordinates)))
        // Reading removed nothing.
        assert.strictEqual(yield* storedOf(destination), 6)
      }))

    it.effect("ack deletes the message from the stream for good; nack and unsettled leave it", () =>
      Effect.gen(function*() {
        const { broker } = yield* browseBroker
        const destination = unique("sy.dlq")
        yield* broker.publish(destination, ["m0", "m1", "m2", "m3", "m4", "m5"].map((t) => message(t)))
        const first = yield* browseAll(destination, (d, i) => i % 3 === 0 ? d.ack : i % 3 === 1 ? d.nack() : Effect.void)
        assert.strictEqual(first.retained, 6)
        assert.deepStrictEqual(first.texts, ["m0", "m1", "m2", "m3", "m4", "m5"])
        // a second ack of a settled delivery changes nothing
        yield* first.deliveries[0]!.ack
        assert.strictEqual(yield* storedOf(destination), 4)
        const second = yield* browseAll(destination, (d) => d.ack)
        assert.strictEqual(second.retained, 4)
        assert.deepStrictEqual(second.texts, ["m1", "m2", "m4", "m5"])
        const third = yield* browseAll(destination)
        assert.strictEqual(third.retained, 0)
        assert.deepStrictEqual(third.texts, [])
        assert.strictEqual(yield* storedOf(destination), 0)
      }))

    it.effect("browse of a subject in a shared stream reads only that subject and ends after its last message", () =>
      Effect.gen(function*() {
        const { broker } = yield* browseBroker
        const id = unique("x").replace(/[^a-z0-9]/gi, "")
        const dlq = `sy.shared.${id}.dlq`
        const other = `sy.shared.${id}.other`
        yield* broker.publish(dlq, [message("p1"), message("p2")])
        yield* broker.publish(other, [message("o1")])
        yield* broker.publish(dlq, [message("p3")])
        // the stream's last message is of the other subject
        yield* broker.publish(other, [message("o2"), message("o3")])
        const read = yield* browseAll(dlq, (d, i) => i === 1 ? d.ack : Effect.void)
        assert.strictEqual(read.retained, 3)
        assert.deepStrictEqual(read.texts, ["p1", "p2", "p3"])
        assert.deepStrictEqual((yield* browseAll(dlq)).texts, ["p1", "p3"])
        assert.deepStrictEqual((yield* browseAll(other)).texts, ["o1", "o2", "o3"])
      }))

    it.effect("a browse whose retained messages were deleted before it read them ends instead of waiting", () =>
      Effect.gen(function*() {
        const { broker, browse } = yield* browseBroker
        const js = yield* NatsTopology.NatsTopology
        const destination = unique("sy.dlq")
        yield* broker.publish(destination, [message("x1"), message("x2"), message("x3")])
        const opened = yield* browse(destination, { prefetch: 16 })
        assert.strictEqual(opened.retained, 3)
        // e.g. the stream's max_age, or an operator's purge, between the open and the read
        const stream = yield* js.streamFor(destination)
        yield* Effect.promise(() => js.manager.streams.purge(stream, { filter: destination }))
        const seen = yield* opened.deliveries.pipe(Stream.runCollect, Effect.timeout("20 seconds"))
        assert.deepStrictEqual(seen.map(text), [])
      }))

    it.effect("browse of a destination no stream holds is empty and creates no stream", () =>
      Effect.gen(function*() {
        const js = yield* NatsTopology.NatsTopology
        const destination = unique("sy.nodlq")
        const read = yield* browseAll(destination)
        assert.strictEqual(read.retained, 0)
        assert.deepStrictEqual(read.texts, [])
        const found = yield* Effect.promise(() => js.manager.streams.find(destination).then(() => true, () => false))
        assert.isFalse(found)
      }))

    it.effect("a copy with the same id and another dedupId is stored and delivered with the original id", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.redrive")
        const original = message("first")
        const [r1] = yield* broker.publish(destination, [original])
        // Without a dedupId the duplicate window swallows a second publish of the id...
        const [swallowed] = yield* broker.publish(destination, [{ ...original, payload: message("again").payload }])
        assert.strictEqual(swallowed!.coordinates.sequence, r1!.coordinates.sequence)
        // ...with one, the copy is stored.
        const copy = { ...message("copy"), id: original.id, dedupId: `${original.id}.redrive.1` }
        const [r2] = yield* broker.publish(destination, [copy])
        assert.strictEqual(r2!.coordinates.sequence, 2)
        assert.strictEqual(yield* storedOf(destination), 2)
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        const got = yield* take(sub, 2)
        assert.deepStrictEqual(got.map(text), ["first", "copy"])
        assert.deepStrictEqual(got.map((d) => d.envelope.id), [original.id, original.id])
        assert.deepStrictEqual(got.map((d) => d.envelope.idSource), ["message", "message"])
      }))

    it.effect("lag is the group's pending plus unacknowledged messages", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.lag")
        const groupName = unique("g")
        const lag = broker.lag
        assert.isDefined(lag)
        if (lag === undefined) return
        yield* broker.publish(destination, Array.from({ length: 10 }, (_, i) => message(`m${i}`)))
        const unknown = yield* Effect.flip(lag(destination, groupName))
        assert.strictEqual(unknown.kind, "NotFound")
        const sub = yield* broker.subscribe(destination, subscribeOptions(groupName, { prefetch: 4 }))
        assert.strictEqual(yield* lag(destination, groupName), 10)
        const got = yield* take(sub, 4, { ack: false })
        yield* Effect.forEach(got.slice(0, 3), (d) => d.ack, { discard: true })
        // 6 never delivered + 1 delivered and unacknowledged (acks travel asynchronously: wait for them)
        const observed = yield* eventually(Effect.orDie(lag(destination, groupName)), (n) => n === 7)
        assert.strictEqual(observed, 7)
      }))

    it.effect("serverInfo reports nats-server, its version and JetStream", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        assert.isDefined(broker.serverInfo)
        const info = yield* broker.serverInfo!
        assert.strictEqual(info.product, "nats-server")
        assert.match(info.version, /^\d+\.\d+\.\d+/)
        assert.strictEqual(info.details["jetstream"], "true")
        assert.match(info.details["jetstream_streams"] ?? "", /^\d+$/)
        assert.isString(info.details["server_id"])
      }))
  })

  layer(NatsBroker.layerCore({ connection: { servers, name: "switchyard-nats-core-info-test" } }), {
    timeout: "30 seconds",
    excludeTestServices: true
  })((it) => {
    it.effect("core NATS keeps nothing to browse but reports its server", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        assert.isUndefined(broker.browse)
        assert.isFalse(broker.capabilities.persistent)
        const info = yield* broker.serverInfo!
        assert.strictEqual(info.product, "nats-server")
        assert.match(info.version, /^\d+\.\d+\.\d+/)
        assert.strictEqual(info.details["jetstream"], "true") // the shared server runs with JetStream on
      }))
  })
})

// ---------------------------------------------------------------------------------------------------------
// DeadLetters (core) on JetStream: two groups, list / count / redrive with a group filter / purge; and a
// 10,000-message redrive.

class CardDeclined extends Data.TaggedError("CardDeclined")<{ readonly n: number }> {
  override get message() {
    return `card declined for order ${this.n}`
  }
}
class ShippingDown extends Data.TaggedError("ShippingDown")<{ readonly n: number }> {
  override get message() {
    return `shipping service down for order ${this.n}`
  }
}

const Order = Schema.Struct({ n: Schema.Number })

// Each dead letter logs a warning: keep the output to the figures.
const quiet = Layer.succeed(References.MinimumLogLevel, "Error")
const typed = Switchyard.on(live).pipe(Layer.provideMerge(quiet))

/** Messages of a subject stored in its stream (0 when no stream holds it). */
const storedNow = (destination: string) =>
  Effect.gen(function*() {
    const js = yield* NatsTopology.NatsTopology
    const name = yield* Effect.promise(() => js.manager.streams.find(destination).catch(() => undefined))
    if (name === undefined) return 0
    const info = yield* Effect.promise(() => js.manager.streams.info(name, { subjects_filter: destination }))
    return info.state.subjects?.[destination] ?? 0
  })

const lagOf = (destination: string, group: string) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    return yield* broker.lag!(destination, group)
  }).pipe(Effect.orDie)

describe("DeadLetters on JetStream", () => {
  layer(typed, { timeout: "240 seconds", excludeTestServices: true })((it) => {
    it.effect("two groups' dead letters: listed with reasons, redriven to the failing group only, purged", () =>
      Effect.gen(function*() {
        const topic = Topic.make(unique("sy.orders"), Order)
        const billingGroup = unique("billing")
        const shippingGroup = unique("shipping")
        const billingBroken = yield* Ref.make(true)
        const billed: Array<{ readonly n: number; readonly id: string; readonly redriveGroup: string | undefined }> = []
        const shipped: Array<number> = []
        yield* Consumer.run(topic, (order, envelope) =>
          Effect.gen(function*() {
            if ((yield* Ref.get(billingBroken)) && order.n % 3 === 0) return yield* new CardDeclined({ n: order.n })
            billed.push({ n: order.n, id: envelope.id, redriveGroup: envelope.headers[Headers.redriveGroup] })
          }), { group: billingGroup, idempotency: true }).pipe(Effect.forkScoped)
        yield* Consumer.run(topic, (order) =>
          order.n === 4 ? Effect.fail(new ShippingDown({ n: order.n })) : Effect.sync(() => shipped.push(order.n)), {
          group: shippingGroup,
          idempotency: true
        }).pipe(Effect.forkScoped)
        const receipts = yield* Publisher.publishAll(topic, Array.from({ length: 9 }, (_, i) => ({ n: i + 1 })))
        const idOf = (n: number) => receipts[n - 1]!.id
        const dlq = `${topic.name}.dlq`
        assert.strictEqual(yield* eventually(storedNow(dlq), (c) => c === 4, "30 seconds"), 4)
        assert.strictEqual(yield* eventually(lagOf(topic.name, billingGroup), (c) => c === 0), 0)
        assert.strictEqual(yield* eventually(lagOf(topic.name, shippingGroup), (c) => c === 0), 0)

        // list: every dead letter, whichever group put it there, with its reason and the decoded value
        const listed = yield* DeadLetters.list(topic).pipe(Stream.runCollect)
        const rows = listed.map((dl) => ({
          group: dl.originGroup,
          n: Result.isSuccess(dl.value) ? dl.value.success.n : -1,
          id: dl.original.id,
          errorTag: dl.errorTag,
          origin: dl.originDestination
        })).sort((a, b) => a.n - b.n)
        assert.deepStrictEqual(rows, [
          { group: billingGroup, n: 3, id: idOf(3), errorTag: "CardDeclined", origin: topic.name },
          { group: shippingGroup, n: 4, id: idOf(4), errorTag: "ShippingDown", origin: topic.name },
          { group: billingGroup, n: 6, id: idOf(6), errorTag: "CardDeclined", origin: topic.name },
          { group: billingGroup, n: 9, id: idOf(9), errorTag: "CardDeclined", origin: topic.name }
        ])
        for (const dl of listed) {
          const n = Result.isSuccess(dl.value) ? dl.value.success.n : -1
          const expected = n === 4 ? `shipping service down for order 4` : `card declined for order ${n}`
          assert.include(dl.reason, expected)
        }
        const counts = yield* DeadLetters.count(topic)
        assert.strictEqual(counts.total, 4)
        assert.deepStrictEqual(counts.byGroup, { [billingGroup]: 3, [shippingGroup]: 1 })
        assert.deepStrictEqual(counts.byErrorTag, { CardDeclined: 3, ShippingDown: 1 })
        assert.deepStrictEqual((yield* DeadLetters.list(topic, { group: shippingGroup }).pipe(Stream.runCollect)).map((dl) => dl.original.id), [idOf(4)])

        // the fix is deployed: redrive billing's dead letters only
        yield* Ref.set(billingBroken, false)
        const dry = yield* DeadLetters.redrive(topic, { group: billingGroup, dryRun: true })
        assert.strictEqual(dry.redriven, 3)
        assert.strictEqual(yield* storedNow(dlq), 4)
        const redriven = yield* DeadLetters.redrive(topic, { group: billingGroup })
        assert.strictEqual(redriven.retained, 4)
        assert.strictEqual(redriven.matched, 3)
        assert.strictEqual(redriven.redriven, 3)
        assert.strictEqual(redriven.kept, 1)
        // the copies are stored next to the originals (same ids, other Nats-Msg-Id) and the dead letters gone
        assert.strictEqual(yield* storedNow(topic.name), 12)
        assert.strictEqual(yield* storedNow(dlq), 1)
        // both groups consumed the copies: billing handled them, shipping acknowledged them unhandled
        assert.strictEqual(yield* eventually(lagOf(topic.name, billingGroup), (c) => c === 0), 0)
        assert.strictEqual(yield* eventually(lagOf(topic.name, shippingGroup), (c) => c === 0), 0)
        assert.strictEqual(yield* eventually(Effect.sync(() => billed.length), (c) => c === 9), 9)
        assert.deepStrictEqual(billed.map((b) => b.n).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9])
        assert.deepStrictEqual(
          billed.filter((b) => b.n % 3 === 0).map((b) => [b.n, b.id, b.redriveGroup]),
          [[3, idOf(3), billingGroup], [6, idOf(6), billingGroup], [9, idOf(9), billingGroup]]
        )
        assert.deepStrictEqual([...shipped].sort((a, b) => a - b), [1, 2, 3, 5, 6, 7, 8, 9])
        // nothing was parked again
        assert.deepStrictEqual((yield* DeadLetters.list(topic).pipe(Stream.runCollect)).map((dl) => dl.original.id), [idOf(4)])

        // purge what shipping parked
        const purged = yield* DeadLetters.purge(topic, { group: shippingGroup })
        assert.strictEqual(purged.retained, 1)
        assert.strictEqual(purged.purged, 1)
        assert.strictEqual(purged.kept, 0)
        assert.strictEqual(yield* storedNow(dlq), 0)
        assert.strictEqual((yield* DeadLetters.count(topic)).total, 0)
      }))

    it.effect("a 10,000-message redrive loses nothing and reports its rate", () =>
      Effect.gen(function*() {
        const total = 10_000
        const topic = Topic.make(unique("sy.bulk"), Order)
        const dlq = `${topic.name}.dlq`
        const group = unique("bulk")
        const broken = yield* Ref.make(true)
        const handled = new Set<string>()
        yield* Consumer.run(topic, (order, envelope) =>
          Effect.gen(function*() {
            if (yield* Ref.get(broken)) return yield* new CardDeclined({ n: order.n })
            handled.add(envelope.id)
          }), { group, concurrency: 32, ordering: "none", prefetch: 512 }).pipe(Effect.forkScoped)
        const receipts = yield* Effect.forEach(
          Array.from({ length: total / 1000 }, (_, chunk) => Array.from({ length: 1000 }, (_, i) => ({ n: chunk * 1000 + i }))),
          (orders) => Publisher.publishAll(topic, orders)
        ).pipe(Effect.map((batches) => batches.flat()))
        const ids = new Set(receipts.map((r) => r.id))
        assert.strictEqual(ids.size, total)
        assert.strictEqual(yield* eventually(storedNow(dlq), (c) => c === total, "120 seconds"), total)
        assert.strictEqual(yield* eventually(lagOf(topic.name, group), (c) => c === 0, "30 seconds"), 0)

        yield* Ref.set(broken, false)
        const progress: Array<DeadLetters.Progress> = []
        const summary = yield* DeadLetters.redrive(topic, {
          onProgress: (p) => Effect.sync(() => progress.push(p))
        })
        console.log(
          `JetStream 10,000-message redrive: retained ${summary.retained}, matched ${summary.matched}, ` +
            `redriven ${summary.redriven}, kept ${summary.kept} in ${summary.elapsedMillis} ms = ` +
            `${summary.ratePerSecond.toFixed(0)} msg/s (${progress.length} progress reports)`
        )
        assert.strictEqual(summary.retained, total)
        assert.strictEqual(summary.matched, total)
        assert.strictEqual(summary.redriven, total)
        assert.strictEqual(summary.kept, 0)
        assert.isAbove(summary.ratePerSecond, 0)
        assert.strictEqual(progress[progress.length - 1]!.done, total)
        assert.isAtLeast(progress.length, total / 100)
        // the dead-letter stream is empty, the origin holds every original and every copy
        assert.strictEqual(yield* storedNow(dlq), 0)
        assert.strictEqual(yield* storedNow(topic.name), 2 * total)
        // and the group handles every one of them again: nothing lost
        assert.strictEqual(yield* eventually(Effect.sync(() => handled.size), (c) => c === total, "120 seconds"), total)
        assert.isTrue([...handled].every((id) => ids.has(id)))
        assert.strictEqual(yield* eventually(lagOf(topic.name, group), (c) => c === 0, "30 seconds"), 0)
        assert.strictEqual((yield* DeadLetters.count(topic)).total, 0)
        console.log(`JetStream 10,000-message redrive: the group handled ${handled.size} distinct redriven ids, DLQ left ${yield* storedNow(dlq)}`)
      }), { timeout: 240_000 })
  })
})
