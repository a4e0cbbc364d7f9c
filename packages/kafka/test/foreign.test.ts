/**
 * Messages written by foreign producers (raw kafkajs, as a Java or console producer writes them) through the
 * typed paths: binary keys keep their bytes and partition into the dead letter; a dead letter over the topic's
 * size limit still ends in the dead-letter topic (reduced) and the consumer keeps going; publishers follow
 * partitions added to a topic; the broker's own telemetry attributes.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Schema, Stream } from "effect"
import { Broker, Consumer, Headers, Topic } from "@switchyard/core"
import { KafkaTopology, KafkaBroker } from "../src/index.ts"
import {
  brokers,
  javaPartitionsOfBytes,
  javaProduceLongKeys,
  longKey,
  message,
  rawProducer,
  sendRaw,
  take,
  testLayer,
  unique
} from "./helpers.ts"

const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })
const encoder = new TextEncoder()

/** Runs `Consumer.run` in the background until `stop`. */
const background = <A>(topic: Topic.Topic<A>, handler: (a: A) => Effect.Effect<void>, group: string) =>
  Consumer.run(topic, handler, { group, concurrency: 4, idempotency: true }).pipe(Effect.forkChild)

describe("kafka: foreign messages", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("a binary (Java LongSerializer) key reaches the dead letter byte for byte, on the same partition", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("binkey")
        yield* admin.createTopics([{ topic: name, partitions: 6 }, { topic: `${name}.dlq`, partitions: 6 }])
        const keys = [longKey(-1n), longKey(-4_611_686_018_427_387_904n), longKey(0x7fff_ffff_ffff_ff80n)]
        const producer = yield* rawProducer()
        yield* sendRaw(producer, name, keys.map((key, i) => ({ key, value: Buffer.from(`not json ${i}`) })))
        const java = yield* javaPartitionsOfBytes(keys, 6)
        const consumer = yield* background(Topic.make(name, Order), () => Effect.void, unique("g"))
        const dlq = yield* broker.subscribe(`${name}.dlq`, { group: unique("g-dlq"), prefetch: 10, startFrom: "earliest" })
        // Dead-lettering is at-least-once (a redelivery after a rebalance under load parks a record again): read
        // until every key has come, the first dead letter of each.
        const seen = new Set<string>()
        const dead = yield* dlq.deliveries.pipe(
          Stream.mapEffect((d) => Effect.as(d.ack, d)),
          Stream.filter((d) => {
            const key = Buffer.from(d.envelope.keyBytes ?? []).toString("hex")
            if (seen.has(key)) return false
            seen.add(key)
            return true
          }),
          Stream.take(keys.length),
          Stream.runCollect,
          Effect.timeoutOrElse({
            duration: "30 seconds",
            orElse: () => Effect.fail(new Error(`dead letters of ${seen.size} of ${keys.length} keys within 30 seconds`))
          })
        )
        yield* Fiber.interrupt(consumer)
        const byKey = new Map(dead.map((d) => [Buffer.from(d.envelope.keyBytes ?? []).toString("hex"), d] as const))
        keys.forEach((key, i) => {
          const d = byKey.get(key.toString("hex"))
          assert.isDefined(d, `dead letter with the key bytes ${key.toString("hex")}`)
          assert.strictEqual(d!.envelope.coordinates.partition, java[i], "the partition the Java client picks for the bytes")
          assert.strictEqual(JSON.parse(d!.envelope.headers[Headers.deadLetterOriginCoordinates]!).partition, java[i])
          assert.isString(d!.envelope.headers[Headers.deadLetterReason])
        })
      }))

    it.effect("Apache Kafka's Java producer with LongSerializer keys: dead letters keep the key bytes and the partition Java chose", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("javakey")
        yield* admin.createTopics([{ topic: name, partitions: 6 }, { topic: `${name}.dlq`, partitions: 6 }])
        const keys = [-1n, -9_223_372_036_854_775_807n, 42n, 1_234_567_890_123n]
        const partitionsByJava = yield* javaProduceLongKeys(brokers(), name, keys.map((k) => [k, `not json ${k}`] as const))
        const consumer = yield* background(Topic.make(name, Order), () => Effect.void, unique("g"))
        const dlq = yield* broker.subscribe(`${name}.dlq`, { group: unique("g-dlq"), prefetch: 10, startFrom: "earliest" })
        const dead = yield* take(dlq, keys.length)
        yield* Fiber.interrupt(consumer)
        // the key's bytes as delivered: keyBytes when not UTF-8, else the text's bytes
        const bytesOf = (e: (typeof dead)[number]["envelope"]) =>
          Buffer.from(e.keyBytes ?? encoder.encode(e.key ?? "")).toString("hex")
        const byKey = new Map(dead.map((d) => [bytesOf(d.envelope), d.envelope] as const))
        keys.forEach((key, i) => {
          const letter = byKey.get(longKey(key).toString("hex"))
          assert.isDefined(letter, `dead letter with the LongSerializer bytes of ${key}`)
          assert.strictEqual(letter!.coordinates.partition, partitionsByJava[i], `partition of ${key}`)
        })
      }))

    it.effect("a dead letter over the topic's max.message.bytes ends in the DLQ in a reduced form; the consumer keeps handling", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("toolarge")
        const limit = 65_536
        const configs = { "max.message.bytes": String(limit) }
        yield* admin.createTopics([{ topic: name, partitions: 1, configs }, { topic: `${name}.dlq`, partitions: 1, configs }])
        const producer = yield* rawProducer()
        // just under the limit as sent raw (no headers); its dead letter adds the reason headers and is over it
        const big = Buffer.alloc(limit - 400, "x")
        yield* sendRaw(producer, name, [
          { key: "big", value: big },
          ...Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(JSON.stringify({ id: `after-${i}`, n: i })) }))
        ])
        const handled = new Set<string>()
        const done = yield* Deferred.make<void>()
        const consumer = yield* background(Topic.make(name, Order), (order) =>
          Effect.suspend(() => {
            handled.add(order.id)
            return handled.size === 5 ? Deferred.succeed(done, undefined) : Effect.void
          }), unique("g"))
        const dlq = yield* broker.subscribe(`${name}.dlq`, { group: unique("g-dlq"), prefetch: 10, startFrom: "earliest" })
        const dead = yield* take(dlq, 1, "40 seconds")
        yield* Deferred.await(done).pipe(Effect.timeout("40 seconds"))
        yield* Fiber.interrupt(consumer)
        assert.deepStrictEqual([...handled].sort(), ["after-0", "after-1", "after-2", "after-3", "after-4"])
        const letter = dead[0]!.envelope
        assert.isString(letter.headers[Headers.deadLetterReason])
        assert.isBelow(letter.payload.byteLength, big.byteLength, "a reduced form (the payload did not fit)")
        assert.strictEqual(letter.key, "big")
      }))

    it.effect("telemetry attributes of a delivery: partition, offset and key", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const name = unique("otel")
        const [receipt] = yield* broker.publish(name, [message(1, { key: "customer-1" })])
        const sub = yield* broker.subscribe(name, { group: unique("g"), prefetch: 10, startFrom: "earliest" })
        const [d] = yield* take(sub, 1)
        assert.isDefined(broker.telemetryAttributes)
        assert.deepStrictEqual(broker.telemetryAttributes!(d!.envelope), {
          "messaging.destination.partition.id": String(receipt!.coordinates.partition),
          "messaging.kafka.offset": Number(receipt!.coordinates.offset),
          "messaging.kafka.message.key": "customer-1"
        })
        // a binary key has no faithful text: left out
        const binary = { ...d!.envelope, key: "\uFFFD", keyBytes: Uint8Array.of(0xff) }
        assert.notProperty(KafkaBroker.telemetryAttributes(binary), "messaging.kafka.message.key")
      }))
  })

  layer(testLayer({ metadataMaxAge: "1 second" }), { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("a running publisher follows partitions added to a topic (metadataMaxAge) and places keys like the Java client", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("grow")
        yield* admin.createTopics([{ topic: name, partitions: 3 }])
        const keys = Array.from({ length: 500 }, (_, i) => `key-${i}`)
        const before = yield* broker.publish(name, keys.map((key, i) => message(i, { key })))
        const javaBefore = yield* javaPartitionsOfBytes(keys.map((k) => encoder.encode(k)), 3)
        assert.deepStrictEqual(before.map((r) => r.coordinates.partition), javaBefore)
        yield* Effect.promise(() => admin.admin.createPartitions({ topicPartitions: [{ topic: name, count: 7 }] }))
        // past the metadata max age (not a timed assertion: the partitions must be right after it)
        yield* Effect.sleep("1500 millis")
        const after = yield* broker.publish(name, keys.map((key, i) => message(i, { key, id: `after-${i}` })))
        const java = yield* javaPartitionsOfBytes(keys.map((k) => encoder.encode(k)), 7)
        const placed = after.map((r) => r.coordinates.partition)
        const misplaced = placed.filter((p, i) => p !== java[i]).length
        assert.strictEqual(misplaced, 0, `${misplaced} of 500 keys placed differently from the Java producer`)
        assert.isTrue(placed.some((p) => p !== undefined && p >= 3), "the new partitions are written")
        assert.isTrue(after.every((r) => r.coordinates.offset !== undefined), "every publish confirmed with an offset")
        // and the broker really stored them where the receipts say
        const end = yield* Effect.promise(() => admin.admin.fetchTopicOffsets(name))
        const total = end.reduce((n, p) => n + Number(p.high), 0)
        assert.strictEqual(total, 1000)
        for (const p of end) {
          const expected = javaBefore.filter((x) => x === p.partition).length + java.filter((x) => x === p.partition).length
          assert.strictEqual(Number(p.high), expected, `partition ${p.partition}`)
        }
      }))
  })

  layer(testLayer({ metadataMaxAge: "1 hour" }), { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("records for partitions the producer's own metadata does not know yet are sent again, never confirmed unwritten", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("stale")
        yield* admin.createTopics([{ topic: name, partitions: 3 }])
        const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`)
        yield* broker.publish(name, keys.map((key, i) => message(i, { key })))
        yield* Effect.promise(() => admin.admin.createPartitions({ topicPartitions: [{ topic: name, count: 7 }] }))
        // our partition count is fresh now, the producer's (kafkajs's, age 1 hour) still says 3
        yield* admin.refreshMetadata(name)
        const after = yield* broker.publish(name, keys.map((key, i) => message(i, { key, id: `after-${i}` })))
        const java = yield* javaPartitionsOfBytes(keys.map((k) => encoder.encode(k)), 7)
        assert.deepStrictEqual(after.map((r) => r.coordinates.partition), java)
        assert.isTrue(after.every((r) => r.coordinates.offset !== undefined), "every publish confirmed with an offset")
        const end = yield* Effect.promise(() => admin.admin.fetchTopicOffsets(name))
        assert.strictEqual(end.reduce((n, p) => n + Number(p.high), 0), 400, "every confirmed record is stored")
      }))
  })
})
