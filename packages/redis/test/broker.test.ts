/**
 * The Redis adapter against the shared server: entries written by the raw node-redis client (binary payload,
 * no metadata, malformed metadata) through the typed `Subscriber`; a delivery count past the limit through
 * `Consumer.run` (dead-lettered); nack delays; trimming of pending entries (visible, counted); a connection
 * killed by the server (resumed, nothing lost); idempotency ledgers in Redis through `KeyValueStore`.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Layer, Metric, Schedule, Schema, Stream } from "effect"
import { KeyValueStore } from "effect/persistence"
import { Broker, Consumer, Envelope, Headers, Publisher, Subscriber, Switchyard, Topic } from "@switchyard/core"
import { RedisBroker, RedisKeyValueStore, RedisTopology } from "../src/index.ts"
import { rawClient, testOptions, unique } from "./helpers.ts"

const encoder = new TextEncoder()
const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })

const live = RedisKeyValueStore.layer({ prefix: "sy-redis-test:kv:" }).pipe(
  Layer.provideMerge(Switchyard.on(RedisBroker.layer(testOptions({ clientName: "sy-redis-broker-test" }))))
)

const poll = (condition: () => boolean, timeout: Duration.Input) =>
  Effect.void.pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: condition }), Effect.timeout(timeout))

describe("redis broker", () => {
  layer(live, { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("raw entries (binary payload, no metadata, garbage metadata) come through the typed Subscriber with the kit's fallbacks", () =>
      Effect.gen(function*() {
        const raw = yield* rawClient()
        const name = unique("foreign")
        const binary = Buffer.from([0x00, 0xff, 0x7b, 0x0d, 0x0a])
        const noMeta = yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", "payload", JSON.stringify({ id: "a", n: 1 })]))
        yield* Effect.promise(() =>
          raw.sendCommand(["XADD", name, "*", "payload", JSON.stringify({ id: "b", n: 2 }), Headers.messageId, " ", Headers.timestamp, "NaN", "x-custom", "žluť", Headers.key, Buffer.from([0xc3, 0x28])])
        )
        yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", "payload", binary, Headers.messageId, "bin-1"]))
        const deliveries = yield* Subscriber.subscribe(Topic.make(name, Order), { group: "typed" }).pipe(
          Stream.take(3),
          Stream.tap((d) => d.ack),
          Stream.runCollect
        )
        const [first, second, third] = deliveries
        assert.deepStrictEqual(first!.value._tag === "Success" ? first!.value.success : undefined, { id: "a", n: 1 })
        assert.strictEqual(first!.envelope.id, `${name}/${String(noMeta)}`)
        assert.strictEqual(first!.envelope.idSource, "broker")
        assert.strictEqual(first!.envelope.attempt, 1)
        assert.strictEqual(first!.envelope.timestamp, Number(String(noMeta).split("-")[0]))
        assert.strictEqual(second!.envelope.idSource, "broker", "a blank id is not the message's own")
        assert.strictEqual(second!.envelope.headers["x-custom"], "žluť")
        assert.deepStrictEqual(second!.envelope.keyBytes, Uint8Array.of(0xc3, 0x28))
        assert.strictEqual(third!.envelope.id, "bin-1")
        assert.strictEqual(third!.value._tag, "Failure", "binary garbage does not decode as an order")
        assert.deepStrictEqual(Buffer.from(third!.envelope.payload), binary)
      }))

    it.effect("payload bytes and binary keys round-trip exactly through publish and subscribe", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const name = unique("bytes")
        const payload = Uint8Array.from({ length: 256 }, (_, i) => i)
        const keyBytes = Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 42)
        const sub = yield* broker.subscribe(name, { group: "g", prefetch: 10, startFrom: "earliest" })
        const [receipt] = yield* broker.publish(name, [{ ...Envelope.outgoing(payload, { id: "b-1", key: "ignored", headers: { payload: "reserved name" } }), keyBytes }])
        const [d] = yield* sub.deliveries.pipe(Stream.take(1), Stream.runCollect)
        yield* d!.ack
        assert.deepStrictEqual(d!.envelope.payload, payload)
        assert.deepStrictEqual(d!.envelope.keyBytes, keyBytes)
        assert.strictEqual(d!.envelope.coordinates.offset, receipt!.coordinates.offset)
        assert.isUndefined(d!.envelope.headers["payload"])
      }))

    it.effect("an entry delivered more often than the delivery limit is dead-lettered by Consumer.run, not handled", () =>
      Effect.gen(function*() {
        const raw = yield* rawClient()
        const broker = yield* Broker.Broker
        const name = unique("limit")
        const group = "billing"
        yield* Effect.promise(() => raw.sendCommand(["XGROUP", "CREATE", name, group, "0", "MKSTREAM"]))
        const id = String(yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", "payload", JSON.stringify({ id: "x", n: 1 }), Headers.messageId, "crashy"])))
        yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", "payload", JSON.stringify({ id: "fine", n: 2 })]))
        // a member that crashed on it over and over: pending with 10 deliveries, idle long past the deadline
        yield* Effect.promise(() => raw.sendCommand(["XREADGROUP", "GROUP", group, "ghost", "COUNT", "1", "STREAMS", name, ">"]))
        yield* Effect.promise(() => raw.sendCommand(["XCLAIM", name, group, "ghost", "0", id, "IDLE", "999999", "RETRYCOUNT", "10", "JUSTID"]))
        const handled: Array<string> = []
        const fine = yield* Deferred.make<void>()
        const consumer = yield* Consumer.run(Topic.make(name, Order), (order) =>
          Effect.sync(() => handled.push(order.id)).pipe(Effect.andThen(order.id === "fine" ? Deferred.succeed(fine, undefined) : Effect.void)), { group }).pipe(Effect.forkChild)
        yield* Deferred.await(fine).pipe(Effect.timeout("20 seconds"))
        const dlq = yield* broker.subscribe(`${name}.dlq`, { group: "ops", prefetch: 10, startFrom: "earliest" })
        const [letter] = yield* dlq.deliveries.pipe(Stream.take(1), Stream.tap((d) => d.ack), Stream.runCollect, Effect.timeout("20 seconds"))
        yield* Fiber.interrupt(consumer)
        assert.deepStrictEqual(handled, ["fine"])
        assert.strictEqual(letter!.envelope.headers[Headers.deadLetterErrorTag], "DeliveryLimitExceeded")
        assert.include(letter!.envelope.headers[Headers.deadLetterReason] ?? "", "past the broker's limit of 10")
        assert.strictEqual(letter!.envelope.headers[Headers.deadLetterOriginalId], "crashy")
      }))

    it.effect("nack with a delay: redelivered after the delay with the next attempt, not before", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const name = unique("delay")
        const sub = yield* broker.subscribe(name, { group: "g", prefetch: 10, startFrom: "earliest" })
        yield* broker.publish(name, [Envelope.outgoing(encoder.encode("x"), { id: "d-1" })])
        const seen: Array<readonly [number, number]> = []
        yield* sub.deliveries.pipe(
          Stream.mapEffect((d) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              seen.push([now, d.envelope.attempt])
              return seen.length === 1 ? d.nack({ delay: "1500 millis" }) : d.ack
            })
          ),
          Stream.take(2),
          Stream.runDrain,
          Effect.timeout("15 seconds")
        )
        assert.strictEqual(seen[1]![1], 2)
        assert.isAtLeast(seen[1]![0] - seen[0]![0], 1400)
      }))

    it.effect("trimming pending entries is visible: XAUTOCLAIM's deleted ids are removed, logged and counted", () =>
      Effect.gen(function*() {
        const raw = yield* rawClient()
        const broker = yield* Broker.Broker
        const name = unique("trim")
        const group = "g"
        yield* Effect.promise(() => raw.sendCommand(["XGROUP", "CREATE", name, group, "0", "MKSTREAM"]))
        for (let i = 0; i < 10; i++) yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", "payload", `old-${i}`]))
        // a member takes them and crashes; then retention trims them before anyone acked
        yield* Effect.promise(() => raw.sendCommand(["XREADGROUP", "GROUP", group, "crashed", "COUNT", "10", "STREAMS", name, ">"]))
        for (let i = 0; i < 3; i++) yield* Effect.promise(() => raw.sendCommand(["XADD", name, "MAXLEN", "=", "3", "*", "payload", `new-${i}`]))
        yield* Effect.promise(() => raw.sendCommand(["XCLAIM", name, group, "crashed", "0", "0-0", "IDLE", "999999", "JUSTID"]))
        const counter = Metric.withAttributes(RedisBroker.trimmedUnacked, { "messaging.destination.name": name, "messaging.consumer.group.name": group })
        const sub = yield* broker.subscribe(name, { group, prefetch: 20, startFrom: "earliest" })
        const got = yield* sub.deliveries.pipe(Stream.take(3), Stream.tap((d) => d.ack), Stream.runCollect, Effect.timeout("15 seconds"))
        assert.deepStrictEqual(got.map((d) => new TextDecoder().decode(d.envelope.payload)), ["new-0", "new-1", "new-2"])
        const counted = yield* Metric.value(counter).pipe(
          Effect.map((state) => state.count),
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (count) => count >= 10 }),
          Effect.timeout("10 seconds")
        )
        assert.strictEqual(counted, 10, "every trimmed pending entry is counted")
        const topology = yield* RedisTopology.RedisTopology
        assert.strictEqual(yield* topology.pending(name, group), 0, "the trimmed ids left the pending list")
      }))

    it.effect("connections killed by the server: the subscription reconnects, resumes, and nothing is lost", () =>
      Effect.gen(function*() {
        const raw = yield* rawClient()
        const broker = yield* Broker.Broker
        const name = unique("reconnect")
        const sub = yield* broker.subscribe(name, { group: "g", prefetch: 5, startFrom: "earliest" })
        const ids = Array.from({ length: 50 }, (_, i) => `r-${i}`)
        yield* broker.publish(name, ids.slice(0, 25).map((id) => Envelope.outgoing(encoder.encode(id), { id })))
        const acked = new Set<string>()
        const reader = yield* sub.deliveries.pipe(
          Stream.mapEffect((d) => d.ack.pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 50 }))), Effect.andThen(Effect.sync(() => acked.add(d.envelope.id))))),
          Stream.runDrain,
          Effect.forkChild
        )
        yield* poll(() => acked.size >= 10, "10 seconds")
        const list = String(yield* Effect.promise(() => raw.sendCommand(["CLIENT", "LIST"])))
        const mine = list.split("\n").filter((line) => line.includes("name=sy-redis-broker-test")).map((line) => /id=(\d+)/.exec(line)?.[1]).filter((x) => x !== undefined)
        assert.isAtLeast(mine.length, 2, "the shared and the dedicated connection")
        for (const id of mine) yield* Effect.promise(() => raw.sendCommand(["CLIENT", "KILL", "ID", id]))
        yield* broker.publish(name, ids.slice(25).map((id) => Envelope.outgoing(encoder.encode(id), { id }))).pipe(
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 50 })))
        )
        yield* poll(() => ids.every((id) => acked.has(id)), "20 seconds")
        yield* Fiber.interrupt(reader)
        assert.strictEqual(acked.size, ids.length)
      }))

    it.effect("idempotency ledgers live in Redis (KeyValueStore): a redelivered id is handled once", () =>
      Effect.gen(function*() {
        const store = yield* KeyValueStore.KeyValueStore
        const name = unique("idem")
        const topic = Topic.make(name, Order)
        // the same id twice (a producer's retry): handled once
        yield* Publisher.publishMessages(topic, [
          { value: { id: "a", n: 1 }, options: { id: "id-a" } },
          { value: { id: "b", n: 2 }, options: { id: "id-b" } },
          { value: { id: "a", n: 1 }, options: { id: "id-a" } }
        ])
        const handled: Array<string> = []
        const consumer = yield* Consumer.run(topic, (order) => Effect.sync(() => handled.push(order.id)), { group: "once", idempotency: true }).pipe(
          Effect.forkChild
        )
        yield* poll(() => handled.length >= 2, "10 seconds")
        yield* Effect.sleep("1 second")
        yield* Fiber.interrupt(consumer)
        assert.deepStrictEqual(handled.sort(), ["a", "b"])
        const keys = yield* store.keys
        assert.isTrue(keys.some((k) => k.includes(name)), `ledger keys in Redis: ${keys.slice(0, 3).join(", ")}`)
      }))
  })
})
