/**
 * Consume-transform-produce in one Kafka transaction: outputs and consumed offsets commit together.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { Broker } from "@switchyard/core"
import { KafkaTopology, KafkaTransactions } from "../src/index.ts"
import { drainFor, message, take, testLayer, text, unique } from "./helpers.ts"

const TestLayer = KafkaTransactions.layer({ transactionalId: unique("tx") }).pipe(Layer.provideMerge(testLayer()))

/** The committed offset of `group` per partition of `topic` (-1: none). */
const committedOffsets = (group: string, topic: string) =>
  Effect.gen(function*() {
    const { admin } = yield* KafkaTopology.KafkaTopology
    const result = yield* Effect.promise(() => admin.fetchOffsets({ groupId: group, topics: [topic] }))
    return new Map((result[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)] as const))
  })

/** The end (high watermark) of every partition of `topic`. */
const endOffsets = (topic: string) =>
  Effect.gen(function*() {
    const { admin } = yield* KafkaTopology.KafkaTopology
    const result = yield* Effect.promise(() => admin.fetchTopicOffsets(topic))
    return new Map(result.map((p) => [p.partition, Number(p.high)] as const))
  })

describe("kafka transactions", () => {
  layer(TestLayer, { excludeTestServices: true, timeout: Duration.minutes(1) })((it) => {
    it.effect("outputs and consumed offsets commit atomically; the group resumes after the transaction", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const tx = yield* KafkaTransactions.KafkaTransactions
        const input = unique("tx-in")
        const output = unique("tx-out")
        // the offsets go to a group the subscription is NOT a member of: only the transaction can commit them
        const readerGroup = unique("g-reader")
        const group = unique("g-tx")
        yield* broker.publish(input, Array.from({ length: 30 }, (_, i) => message(i)))
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* broker.subscribe(input, { group: readerGroup, prefetch: 100, startFrom: "earliest" })
          const batch = yield* take(sub, 30, "30 seconds", () => Effect.void)
          // nothing is committed for the transaction's group before the transaction
          const before = yield* committedOffsets(group, input)
          assert.isTrue([...before.values()].every((o) => o === -1), `before: ${JSON.stringify([...before])}`)
          yield* tx.commit({
            group,
            consumed: batch,
            outputs: [{
              destination: output,
              messages: batch.map((d, i) => message(i, { id: `out-${d.envelope.id}`, payload: new TextEncoder().encode(text(d.envelope.payload).toUpperCase()) }))
            }]
          })
        }))
        const end = yield* endOffsets(input)
        assert.strictEqual(end.size, 4)
        assert.strictEqual([...end.values()].reduce((a, b) => a + b, 0), 30)
        // offsets were committed by the transaction, for its group: the end of every partition
        const offsets = yield* committedOffsets(group, input)
        assert.deepStrictEqual([...offsets].sort(([a], [b]) => a - b), [...end].sort(([a], [b]) => a - b))
        // and the consumed deliveries were acked afterwards (the reader's own group committed them too)
        const acked = yield* committedOffsets(readerGroup, input)
        assert.deepStrictEqual([...acked].sort(([a], [b]) => a - b), [...end].sort(([a], [b]) => a - b))
        // outputs are visible to read_committed consumers
        const out = yield* broker.subscribe(output, { group: unique("reader"), prefetch: 100, startFrom: "earliest" })
        const got = yield* take(out, 30)
        assert.strictEqual(new Set(got.map((d) => d.envelope.id)).size, 30)
        assert.isTrue(got.every((d) => text(d.envelope.payload).startsWith("PAYLOAD-")))
        // and a member of the transaction's group resumes after the transaction: nothing left
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
        const sub = yield* broker.subscribe(input, { group: unique("g-reader"), prefetch: 100, startFrom: "earliest" })
        const batch = yield* take(sub, 5, "30 seconds", () => Effect.void)
        // a consumed delivery from a partition that does not exist: the transaction has already sent its
        // output, then its offset commit fails (after the broker took the offsets of the real partitions),
        // so the adapter aborts it
        const first = batch[0]!
        const bogus: Broker.RawDelivery = {
          envelope: { ...first.envelope, coordinates: { ...first.envelope.coordinates, partition: 99, offset: "0" } },
          ack: Effect.die("the bogus delivery must not be acked"),
          nack: () => Effect.void
        }
        const error = yield* tx.commit({
          group,
          consumed: [...batch, bogus],
          outputs: [{ destination: output, messages: [message(1, { id: "aborted" })] }]
        }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "TransactionError")
        // no committed offset for the group on any partition
        const offsets = yield* committedOffsets(group, input)
        assert.strictEqual(offsets.size, 4)
        assert.isTrue([...offsets.values()].every((o) => o === -1), `committed: ${JSON.stringify([...offsets])}`)
        // the transaction really ended: the same producer commits the next one, whose output and offsets
        // become visible while the aborted output never does (read_committed)
        yield* tx.commit({ group, consumed: batch, outputs: [{ destination: output, messages: [message(2, { id: "after" })] }] })
        const out = yield* broker.subscribe(output, { group: unique("reader"), prefetch: 100, startFrom: "earliest" })
        // the two visible records first (however long the reader's join takes), then nothing more: the
        // aborted output stays invisible
        const got = yield* take(out, 2)
        assert.deepStrictEqual(got.map((d) => d.envelope.id).sort(), ["after", "marker"])
        assert.deepStrictEqual((yield* drainFor(out, "1500 millis")).map((d) => d.envelope.id), [])
        const end = yield* endOffsets(input)
        const after = yield* committedOffsets(group, input)
        assert.deepStrictEqual([...after].sort(([a], [b]) => a - b), [...end].sort(([a], [b]) => a - b))
      }))
  })
})
