import { assert, describe, layer } from "@effect/vitest"
import { Broker, Errors } from "@switchyard/core"
import { Effect, Exit, Scope, Stream } from "effect"
import { JetStream, NatsBroker } from "../src/index.ts"
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
    const js = yield* JetStream.JetStream
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
        assert.isTrue(seen.every((d) => JetStream.isJetStreamCoordinates(d.envelope.coordinates)))
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

    it.effect("browse of a destination no stream holds is empty and creates no stream", () =>
      Effect.gen(function*() {
        const js = yield* JetStream.JetStream
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
