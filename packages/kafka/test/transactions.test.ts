/**
 * Consume-transform-produce in one Kafka transaction: outputs and consumed offsets commit together.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Stream } from "effect"
import { Broker } from "@switchyard/core"
import { KafkaAdmin, KafkaTransactions } from "../src/index.ts"
import { drainFor, message, take, testLayer, text, unique } from "./helpers.ts"

const TestLayer = KafkaTransactions.layer({ transactionalId: unique("tx") }).pipe(Layer.provideMerge(testLayer()))

describe("kafka transactions", () => {
  layer(TestLayer, { excludeTestServices: true, timeout: Duration.minutes(1) })((it) => {
    it.effect("outputs and consumed offsets commit atomically; the group resumes after the transaction", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const tx = yield* KafkaTransactions.KafkaTransactions
        const { admin } = yield* KafkaAdmin.KafkaAdmin
        const input = unique("tx-in")
        const output = unique("tx-out")
        const group = unique("g")
        yield* broker.publish(input, Array.from({ length: 30 }, (_, i) => message(i)))
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* broker.subscribe(input, { group, prefetch: 100, startFrom: "earliest" })
          const batch = yield* take(sub, 30, "30 seconds", () => Effect.void)
          yield* tx.commit({
            group,
            consumed: batch,
            outputs: [{
              destination: output,
              messages: batch.map((d, i) => message(i, { id: `out-${d.envelope.id}`, payload: new TextEncoder().encode(text(d.envelope.payload).toUpperCase()) }))
            }]
          })
        }))
        // offsets were committed by the transaction
        const offsets = yield* Effect.promise(() => admin.fetchOffsets({ groupId: group, topics: [input] }))
        const end = yield* Effect.promise(() => admin.fetchTopicOffsets(input))
        for (const p of offsets[0]!.partitions) {
          assert.strictEqual(p.offset, end.find((e) => e.partition === p.partition)!.high)
        }
        // outputs are visible to read_committed consumers
        const out = yield* broker.subscribe(output, { group: unique("reader"), prefetch: 100, startFrom: "earliest" })
        const got = yield* take(out, 30)
        assert.strictEqual(new Set(got.map((d) => d.envelope.id)).size, 30)
        assert.isTrue(got.every((d) => text(d.envelope.payload).startsWith("PAYLOAD-")))
        // and the input group has nothing left
        const again = yield* broker.subscribe(input, { group, prefetch: 100, startFrom: "earliest" })
        const rest = yield* drainFor(again, "1 second")
        assert.strictEqual(rest.length, 0)
      }))

    it.effect("an aborted transaction leaves no visible output and no committed offset", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const tx = yield* KafkaTransactions.KafkaTransactions
        const input = unique("txa-in")
        const output = unique("txa-out")
        const group = unique("g")
        yield* broker.publish(input, Array.from({ length: 5 }, (_, i) => message(i)))
        yield* broker.publish(output, [message(999, { id: "marker" })])
        // a raw transaction that is aborted
        yield* Effect.promise(async () => {
          const t = await tx.producer.transaction()
          await t.send({ topic: output, messages: [{ key: null, value: Buffer.from("aborted"), headers: { "x-switchyard-id": "aborted" } }] })
          await t.sendOffsets({
            consumerGroupId: group,
            topics: [{ topic: input, partitions: [0, 1, 2, 3].map((partition) => ({ partition, offset: "100" })) }]
          })
          await t.abort()
        })
        const out = yield* broker.subscribe(output, { group: unique("reader"), prefetch: 100, startFrom: "earliest" })
        const got = yield* drainFor(out, "1500 millis")
        assert.deepStrictEqual(got.map((d) => d.envelope.id), ["marker"])
        const sub = yield* broker.subscribe(input, { group, prefetch: 100, startFrom: "earliest" })
        const all = yield* sub.deliveries.pipe(Stream.take(5), Stream.runCollect)
        assert.strictEqual(all.length, 5)
      }))
  })
})
