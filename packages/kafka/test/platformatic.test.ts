/**
 * The @platformatic/kafka backend beside the kafkajs one, on one real broker: a key lands on the same
 * partition from both (and where Apache Kafka's Java client puts it); messages published by one backend are
 * consumed by the other through the typed `Consumer.run`, both ways; raw kafkajs records without any header
 * and with malformed headers go through the typed path (valid ones handled, undecodable ones dead-lettered
 * with a reason), and so does a poison corpus.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { AuthenticationError, MultipleErrors, NetworkError, ProtocolError, TimeoutError, UserError } from "@platformatic/kafka"
import { Context, Deferred, Duration, Effect, Fiber, Layer, Schedule, Schema, Stream } from "effect"
import { Broker, Consumer, type Envelope, Headers, Publisher, Topic } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import type { Message } from "kafkajs"
import { KafkaPlatformatic, KafkaTopology } from "../src/index.ts"
import { codeOf, kindOf, reasonOf } from "../src/internal/platformatic/errors.ts"
import {
  committed,
  drainFor,
  javaPartitionsOfBytes,
  longKey,
  message,
  publishCorpus,
  rawProducer,
  sendRaw,
  take,
  testLayer,
  testOptions,
  unique
} from "./helpers.ts"

const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })
type Order = typeof Order.Type

/** The platformatic broker, built in the current scope beside the layer's kafkajs one. */
const platformatic = Effect.map(Layer.build(KafkaPlatformatic.layer(testOptions())), (ctx) => Context.get(ctx, Broker.Broker))

/** Runs `effect` on `broker` (and a typed `Publisher` on it). */
const onBroker = (broker: Broker.Broker["Service"]) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Layer.provideMerge(Publisher.layer, Layer.succeed(Broker.Broker, broker))))

/** Runs the typed consumer on `broker` until every id of `ids` was handled; returns the handled orders. */
const consumeAll = (broker: Broker.Broker["Service"], topic: Topic.Topic<Order>, ids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const handled = new Map<string, Order>()
    const all = yield* Deferred.make<void>()
    const fiber = yield* Consumer.run(topic, (order) =>
      Effect.suspend(() => {
        handled.set(order.id, order)
        return ids.every((id) => handled.has(id)) ? Deferred.succeed(all, undefined) : Effect.void
      }), { group: unique("g"), concurrency: 4 }).pipe(onBroker(broker), Effect.forkChild)
    yield* Deferred.await(all).pipe(Effect.timeout("60 seconds"))
    yield* Fiber.interrupt(fiber)
    return handled
  })

const shuffle = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const committedOffsets = (group: string, topic: string) =>
  Effect.map(committed(group, topic), (byPartition) => new Map([...byPartition].map(([p, c]) => [p, c.offset] as const)))

const json = (value: unknown) => Buffer.from(JSON.stringify(value))

describe("kafka: the @platformatic/kafka backend beside kafkajs", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: Duration.minutes(3) })((it) => {
    it.effect("a key lands on the same partition from both backends, the partition Apache Kafka's Java client picks", () =>
      Effect.gen(function*() {
        const kafkajs = yield* Broker.Broker
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("samekey")
        yield* admin.createTopics([{ topic: name, partitions: 7 }])
        const text = Array.from({ length: 60 }, (_, i) => message(i, { key: `customer-${i * 7919}` }))
        const binary = [longKey(-1n), longKey(42n), longKey(0x7fff_ffff_ffff_ff80n)].map((bytes, i) =>
          message(100 + i, { key: undefined, keyBytes: new Uint8Array(bytes) })
        )
        const messages = [...text, ...binary]
        const fromKafkajs = yield* kafkajs.publish(name, messages)
        const fromPlatformatic = yield* plt.publish(name, messages.map((m) => ({ ...m, id: `${m.id}-plt` })))
        const keyBytes = messages.map((m) => m.keyBytes ?? new TextEncoder().encode(m.key!))
        const java = yield* javaPartitionsOfBytes(keyBytes, 7)
        const spread = new Set<number>()
        messages.forEach((_, i) => {
          const a = fromKafkajs[i]!.coordinates.partition
          const b = fromPlatformatic[i]!.coordinates.partition
          assert.strictEqual(b, a, `key ${i}: platformatic partition ${b}, kafkajs partition ${a}`)
          assert.strictEqual(a, java[i], `key ${i}: the Java client's partition`)
          assert.isString(fromPlatformatic[i]!.coordinates.offset, "the receipt has an offset")
          spread.add(a!)
        })
        assert.isAtLeast(spread.size, 5, "the keys spread over the partitions")
        // and the records are where the receipts say: read back through the platformatic backend
        const sub = yield* plt.subscribe(name, { group: unique("g"), prefetch: 200, startFrom: "earliest" })
        const read = yield* take(sub, messages.length * 2)
        const at = new Map(read.map((d) => [d.envelope.id, d.envelope.coordinates] as const))
        messages.forEach((m, i) => {
          assert.deepStrictEqual(at.get(m.id)?.offset, fromKafkajs[i]!.coordinates.offset)
          assert.deepStrictEqual(at.get(`${m.id}-plt`)?.offset, fromPlatformatic[i]!.coordinates.offset)
          assert.strictEqual(at.get(`${m.id}-plt`)?.partition, java[i])
        })
      }))

    it.effect("backpressure: a partition holds at most `prefetch` unacked deliveries, acks resume it", () =>
      Effect.gen(function*() {
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("pltbp")
        yield* admin.createTopics([{ topic, partitions: 2 }])
        const total = 600
        yield* plt.publish(topic, Array.from({ length: total }, (_, i) => message(i, { key: `k${i}` })))
        const sub = yield* plt.subscribe(topic, { group: unique("g"), prefetch: 10, startFrom: "earliest" })
        const held = yield* drainFor(sub, "1500 millis", false)
        assert.isAtMost(held.length, 20, "at most prefetch per partition while nothing is acked")
        assert.isAtLeast(held.length, 10)
        for (const p of [0, 1]) {
          assert.isAtMost(held.filter((d) => d.envelope.coordinates.partition === p).length, 10, `partition ${p}`)
        }
        yield* Effect.forEach(held, (d) => d.ack, { discard: true })
        const rest = yield* take(sub, total - held.length)
        const ids = new Set([...held, ...rest].map((d) => d.envelope.id))
        assert.strictEqual(ids.size, total)
      }))

    it.effect("commits are the contiguous prefix of acks under random order, committed on close; the next member resumes at each partition's first unacked record", () =>
      Effect.gen(function*() {
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("pltcommit")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 3 }])
        const total = 600
        yield* plt.publish(topic, Array.from({ length: total }, (_, i) => message(i, { key: `k${i}` })))
        const holes = new Map<number, number>()
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* plt.subscribe(topic, { group, prefetch: 1000, startFrom: "earliest" })
          const all = yield* take(sub, total, "30 seconds", () => Effect.void)
          const counts = new Map<number, number>()
          for (const d of all) counts.set(d.envelope.coordinates.partition!, (counts.get(d.envelope.coordinates.partition!) ?? 0) + 1)
          // one unacked record per partition (partition 0's is its first: nothing may be committed past it)
          for (const [p, count] of counts) holes.set(p, p === 0 ? 0 : 1 + Math.floor(Math.random() * (count - 1)))
          const toAck = shuffle(all.filter((d) => holes.get(d.envelope.coordinates.partition!) !== Number(d.envelope.coordinates.offset)))
          yield* Effect.forEach(toAck, (d) => d.ack, { concurrency: 16, discard: true })
          yield* Effect.sleep("500 millis")
          const committed = yield* committedOffsets(group, topic)
          for (const [p, hole] of holes) {
            if (hole > 0) assert.strictEqual(committed.get(p), hole, `partition ${p}: the end of the acked prefix`)
          }
        }))
        // closed: the final commit is there, and a new member starts at each hole
        const committed = yield* committedOffsets(group, topic)
        for (const [p, hole] of holes) if (hole > 0) assert.strictEqual(committed.get(p), hole, `partition ${p} after close`)
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* plt.subscribe(topic, { group, prefetch: 1000, startFrom: "earliest" })
          const again = yield* drainFor(sub, "2 seconds")
          for (const [p, hole] of holes) {
            const offsets = again.filter((d) => d.envelope.coordinates.partition === p).map((d) => Number(d.envelope.coordinates.offset))
            assert.strictEqual(Math.min(...offsets), hole, `partition ${p} resumes at its first unacked record`)
          }
        }))
      }))

    it.effect("a group handed from kafkajs members to platformatic ones: it resumes at the kafkajs commit and skips what kafkajs acked above it", () =>
      Effect.gen(function*() {
        const kafkajs = yield* Broker.Broker
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("handover")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 1 }])
        yield* kafkajs.publish(topic, Array.from({ length: 50 }, (_, i) => message(i)))
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* kafkajs.subscribe(topic, { group, prefetch: 100, startFrom: "earliest" })
          // everything acked but offset 10: the commit stops there, 11..49 travel in its metadata
          yield* take(sub, 50, "30 seconds", (d) => (d.envelope.coordinates.offset === "10" ? Effect.void : d.ack))
          yield* Effect.sleep("300 millis")
        }))
        assert.strictEqual((yield* committedOffsets(group, topic)).get(0), 10)
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* plt.subscribe(topic, { group, prefetch: 100, startFrom: "earliest" })
          const again = yield* drainFor(sub, "2 seconds")
          assert.deepStrictEqual(again.map((d) => d.envelope.coordinates.offset), ["10"], "only the record kafkajs did not ack")
        }))
        assert.strictEqual((yield* committedOffsets(group, topic)).get(0), 50, "the platformatic member committed past it")
      }))

    it.effect("startFrom latest: a new group only sees messages published after subscribe returned", () =>
      Effect.gen(function*() {
        const plt = yield* platformatic
        const topic = unique("pltlatest")
        yield* plt.publish(topic, Array.from({ length: 20 }, (_, i) => message(i, { id: `old-${i}` })))
        const sub = yield* plt.subscribe(topic, { group: unique("g"), prefetch: 100, startFrom: "latest" })
        yield* plt.publish(topic, Array.from({ length: 20 }, (_, i) => message(i, { id: `new-${i}` })))
        const got = yield* take(sub, 20)
        assert.isTrue(got.every((d) => d.envelope.id.startsWith("new-")))
        const extra = yield* drainFor(sub, "500 millis")
        assert.strictEqual(extra.length, 0)
      }))

    it.effect("published by the kafkajs backend, consumed by the platformatic one through Consumer.run, and back", () =>
      Effect.gen(function*() {
        const kafkajs = yield* Broker.Broker
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const there = unique("there")
        const back = unique("back")
        yield* admin.createTopics([{ topic: there, partitions: 4 }, { topic: back, partitions: 4 }])
        const orders = Array.from({ length: 200 }, (_, n): Order => ({ id: `o-${n}`, n }))
        const thereTopic = Topic.make(there, Order, { key: (o) => `c-${o.n % 13}` })
        const backTopic = Topic.make(back, Order, { key: (o) => `c-${o.n % 13}` })

        yield* Publisher.publishAll(thereTopic, orders).pipe(onBroker(kafkajs))
        const onPlatformatic = yield* consumeAll(plt, thereTopic, orders.map((o) => o.id))
        assert.strictEqual(onPlatformatic.size, orders.length)
        for (const o of orders) assert.deepStrictEqual(onPlatformatic.get(o.id), o)

        yield* Publisher.publishAll(backTopic, orders).pipe(onBroker(plt))
        const onKafkajs = yield* consumeAll(kafkajs, backTopic, orders.map((o) => o.id))
        assert.strictEqual(onKafkajs.size, orders.length)
        for (const o of orders) assert.deepStrictEqual(onKafkajs.get(o.id), o)

        // the envelopes are the same whichever backend wrote them: id, key, headers, content type, correlation
        const sent = message(7, { correlationId: "corr-1", causationId: "cause-1", headers: { tenant: "acme" } })
        yield* plt.publish(there, [sent])
        const viaKafkajs = yield* kafkajs.subscribe(there, { group: unique("g"), prefetch: 500, startFrom: "earliest" })
        const found = (yield* take(viaKafkajs, orders.length + 1)).find((d) => d.envelope.id === sent.id)?.envelope
        assert.isDefined(found)
        assert.strictEqual(found!.key, sent.key)
        assert.strictEqual(found!.contentType, sent.contentType)
        assert.strictEqual(found!.correlationId, "corr-1")
        assert.strictEqual(found!.causationId, "cause-1")
        assert.strictEqual(found!.headers["tenant"], "acme")
        assert.strictEqual(found!.timestamp, sent.timestamp)
        assert.deepStrictEqual(found!.payload, sent.payload)
      }))

    it.effect("raw kafkajs records without headers and with malformed headers: valid ones handled, undecodable ones dead-lettered with a reason", () =>
      Effect.gen(function*() {
        const kafkajs = yield* Broker.Broker
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("rawhdr")
        yield* admin.createTopics([{ topic: name, partitions: 3 }, { topic: `${name}.dlq`, partitions: 3 }])
        const malformed = {
          [Headers.messageId]: Buffer.from([0xff, 0xfe, 0x00]),
          [Headers.contentType]: "",
          "x-switchyard-timestamp": "NaN",
          // a computed name: an own property, not the literal's prototype
          ["__proto__"]: "not a prototype",
          traceparent: "garbage",
          "x-repeated": [Buffer.from("a"), Buffer.from("b")]
        }
        const records: Array<Message> = [
          { key: "a", value: json({ id: "plain-1", n: 1 }) },
          { key: null, value: json({ id: "plain-2", n: 2 }) },
          { key: "b", value: Buffer.from("not json, no headers") },
          { key: "c", value: json({ id: "odd-1", n: 3 }), headers: malformed },
          { key: "d", value: json({ id: 5, n: "five" }), headers: malformed },
          { key: "e", value: Buffer.from([0x7b, 0x80, 0x7d]), headers: { [Headers.contentType]: "text/garbage; charset=latin1" } }
        ]
        const producer = yield* rawProducer()
        yield* sendRaw(producer, name, records)
        // the consumer runs until the valid orders are handled and the three others are dead letters
        const handled = new Map<string, Order>()
        const consumer = yield* Consumer.run(Topic.make(name, Order), (order) => Effect.sync(() => void handled.set(order.id, order)), {
          group: unique("g"),
          concurrency: 4
        }).pipe(onBroker(plt), Effect.forkChild)
        const dlq = yield* kafkajs.subscribe(`${name}.dlq`, { group: unique("g-dlq"), prefetch: 10, startFrom: "earliest" })
        const dead = (yield* take(dlq, 3, "60 seconds")).map((d) => d.envelope)
        yield* Effect.sync(() => handled.size).pipe(
          Effect.repeat({ until: (n) => n >= 3, schedule: Schedule.spaced("50 millis") }),
          Effect.timeout("30 seconds")
        )
        yield* Fiber.interrupt(consumer)
        assert.deepStrictEqual([...handled.keys()].sort(), ["odd-1", "plain-1", "plain-2"])
        assert.deepStrictEqual(handled.get("odd-1"), { id: "odd-1", n: 3 })
        const payloads = dead.map((e) => Buffer.from(e.payload).toString("hex")).sort()
        assert.deepStrictEqual(payloads, [records[2]!, records[4]!, records[5]!].map((r) => Buffer.from(r.value!).toString("hex")).sort())
        for (const letter of dead) {
          assert.match(letter.headers[Headers.deadLetterReason] ?? "", /\S/, "a dead letter carries its reason")
          assert.strictEqual(JSON.parse(letter.headers[Headers.deadLetterOriginCoordinates]!).destination, name)
        }
        const wrongSchema = dead.find((e) => Buffer.from(e.payload).equals(records[4]!.value as Buffer))!
        assert.strictEqual(wrongSchema.headers["x-repeated"], "b", "the last value of a repeated header")

        // both backends read every one of these records as the same envelope
        const readAll = (broker: Broker.Broker["Service"]) =>
          broker.subscribe(name, { group: unique("g-raw"), prefetch: 10, startFrom: "earliest" }).pipe(
            Effect.flatMap((sub) => take(sub, records.length)),
            Effect.map((ds) => new Map(ds.map((d) => [`${d.envelope.coordinates.partition}/${d.envelope.coordinates.offset}`, d.envelope] as const)))
          )
        const viaKafkajs = yield* readAll(kafkajs)
        const viaPlatformatic = yield* readAll(plt)
        assert.strictEqual(viaPlatformatic.size, records.length)
        for (const [at, envelope] of viaKafkajs) assert.deepStrictEqual(viaPlatformatic.get(at), envelope, at)
        const odd = [...viaPlatformatic.values()].find((e) => e.key === "c")!
        assert.strictEqual(odd.headers["__proto__"], "not a prototype", "a header named __proto__ stays a header")
        assert.strictEqual(odd.headers["x-repeated"], "b")
        assert.strictEqual(odd.headers["traceparent"], "garbage")
        const plain = [...viaPlatformatic.values()].find((e) => e.key === "a")!
        assert.strictEqual(plain.id, `${name}/${plain.coordinates.partition}/${plain.coordinates.offset}`, "a record without an id header is identified by its coordinates")
      }))

    it.effect("failures are classified from the client's own errors: a record over max.message.bytes is TooLarge (MESSAGE_TOO_LARGE); an unreachable cluster fails the layer as Unreachable", () =>
      Effect.gen(function*() {
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("pltlarge")
        yield* admin.createTopics([{ topic: name, partitions: 1, configs: { "max.message.bytes": "4096" } }])
        const error = yield* plt.publish(name, [message(1, { payload: new Uint8Array(20_000) })]).pipe(Effect.flip)
        assert.strictEqual(error._tag, "PublishError")
        assert.strictEqual(error.reason._tag, "TooLarge", error.reason.message)
        assert.strictEqual(error.reason.code, "MESSAGE_TOO_LARGE")
        // the producer is replaced after the failure: the next publish goes through
        const [receipt] = yield* plt.publish(name, [message(2)])
        assert.strictEqual(receipt!.coordinates.partition, 0)

        const unreachable = yield* Layer.build(
          KafkaPlatformatic.layer(testOptions({ brokers: ["127.0.0.1:1"], connectTimeout: "1 second", retry: { retries: 1, initialRetryTime: "100 millis" } }))
        ).pipe(Effect.flip)
        assert.strictEqual(unreachable._tag, "ConnectionError")
        assert.strictEqual(unreachable.reason._tag, "Unreachable", unreachable.reason.message)
      }))

    it.effect("a poison corpus of 2,000 raw messages through the platformatic backend: every valid order handled, every invalid one dead-lettered with a reason", () =>
      Effect.gen(function*() {
        const kafkajs = yield* Broker.Broker
        const plt = yield* platformatic
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("pltpoison")
        const partitions = 4
        yield* admin.createTopics([{ topic: name, partitions }, { topic: `${name}.dlq`, partitions }])
        const corpus = PoisonCorpus.make({ count: 2_000, oversizedCount: 2 })
        const producer = yield* rawProducer()
        const coordinates = yield* publishCorpus(producer, name, corpus, partitions)
        const valid = corpus.filter((e) => e.valid)
        const invalid = corpus.filter((e) => !e.valid)
        const handled = new Set<string>()
        const allValid = yield* Deferred.make<void>()
        const consumer = yield* Consumer.run(PoisonCorpus.topic(name), (order) =>
          Effect.suspend(() => {
            handled.add(order.id)
            return valid.every((e) => handled.has(e.orderId!)) ? Deferred.succeed(allValid, undefined) : Effect.void
          }), { group: unique("g"), concurrency: 8, idempotency: true }).pipe(onBroker(plt), Effect.forkChild)
        const dlq = yield* kafkajs.subscribe(`${name}.dlq`, { group: unique("g-dlq"), prefetch: 2000, startFrom: "earliest" })
        const letters: Array<Envelope.Envelope> = []
        yield* dlq.deliveries.pipe(
          Stream.tap((d) => d.ack),
          Stream.take(invalid.length),
          Stream.timeout("15 seconds"),
          Stream.runForEach((d) => Effect.sync(() => letters.push(d.envelope))),
          Effect.timeoutOrElse({ duration: "120 seconds", orElse: () => Effect.void })
        )
        yield* Deferred.await(allValid).pipe(Effect.timeout("60 seconds"), Effect.ignore)
        yield* Fiber.interrupt(consumer)
        const deadLettered = new Set<PoisonCorpus.Entry>()
        const withoutReason: Array<string> = []
        for (const letter of letters) {
          const origin = JSON.parse(letter.headers[Headers.deadLetterOriginCoordinates] ?? "{}")
          const entry = coordinates.get(`${origin.partition}/${origin.offset}`)
          if (entry === undefined) continue
          deadLettered.add(entry)
          if ((letter.headers[Headers.deadLetterReason] ?? "") === "") withoutReason.push(entry.kind)
        }
        const unhandled = valid.filter((e) => !handled.has(e.orderId!))
        assert.deepStrictEqual(PoisonCorpus.countByKind(unhandled), {}, "valid entries not handled")
        assert.deepStrictEqual(PoisonCorpus.countByKind(invalid.filter((e) => !deadLettered.has(e))), {}, "invalid entries without a dead letter")
        assert.deepStrictEqual(withoutReason, [], "dead letters without a reason")
        assert.isAbove(valid.length, 500)
        assert.isAbove(invalid.length, 500)
      }), { timeout: 180_000 })
  })
})

describe("kafka: @platformatic/kafka error classification", () => {
  it("protocol ids, client codes and socket codes map to the core reasons; the most final kind in a chain wins", () => {
    const tooLarge = new ProtocolError("MESSAGE_TOO_LARGE")
    assert.strictEqual(kindOf(tooLarge), "TooLarge")
    assert.strictEqual(codeOf(tooLarge), "MESSAGE_TOO_LARGE")
    assert.strictEqual(kindOf(new ProtocolError("TOPIC_AUTHORIZATION_FAILED")), "AuthorizationFailed")
    assert.strictEqual(kindOf(new AuthenticationError("SASL failed")), "AuthenticationFailed")
    assert.strictEqual(kindOf(new TimeoutError("request timed out")), "Timeout")
    assert.strictEqual(kindOf(new UserError("bad option")), "Invalid")
    const socket = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })
    const network = new NetworkError("Connection failed", { cause: socket })
    assert.strictEqual(kindOf(network), "Unreachable")
    assert.strictEqual(codeOf(network), "PLT_KFK_NETWORK")
    // a retry that gave up: the final protocol error wins over the retryable network errors before it
    const gaveUp = new MultipleErrors("send failed 3 times", [network, new NetworkError("again"), tooLarge])
    assert.strictEqual(kindOf(gaveUp), "TooLarge")
    assert.strictEqual(codeOf(gaveUp), "MESSAGE_TOO_LARGE")
    assert.strictEqual(kindOf(new Error("something else")), "Unknown")
    const reason = reasonOf(gaveUp, "publish failed")
    assert.strictEqual(reason._tag, "TooLarge")
    assert.match(reason.message, /^publish failed: /)
  })
})
