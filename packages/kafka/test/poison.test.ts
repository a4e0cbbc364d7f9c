/**
 * The poison corpus (10,000 foreign messages: valid orders with full, missing or garbage metadata; invalid
 * JSON, wrong schema, empty, invalid UTF-8, oversized payloads and headers) published with a raw kafkajs
 * producer and consumed with the typed `Consumer.run` (idempotency on): the consumer stays alive, every valid
 * order is handled, every invalid entry is in `<topic>.dlq` with a reason.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Stream } from "effect"
import { Broker, Consumer, type Envelope, Headers } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { KafkaTopology } from "../src/index.ts"
import { publishCorpus, rawProducer, testLayer, unique } from "./helpers.ts"

const partitions = 4

describe("kafka: poison corpus", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: Duration.minutes(3) })((it) => {
    it.effect("10,000 raw messages: consumer alive, every valid order handled, every invalid one dead-lettered with a reason", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("poison")
        yield* admin.createTopics([{ topic: name, partitions }, { topic: `${name}.dlq`, partitions }])
        const corpus = PoisonCorpus.make({ count: 10_000 })
        const producer = yield* rawProducer()
        const coordinates = yield* publishCorpus(producer, name, corpus, partitions)

        const handled = new Set<string>()
        const finalHandled = yield* Deferred.make<void>()
        const consumer = yield* Consumer.run(PoisonCorpus.topic(name), (order) =>
          Effect.suspend(() => {
            handled.add(order.id)
            return order.id === "final" ? Deferred.succeed(finalHandled, undefined) : Effect.void
          }), { group: unique("g"), concurrency: 8, idempotency: true }).pipe(Effect.forkChild)

        const invalid = corpus.filter((e) => !e.valid)
        const dlq = yield* broker.subscribe(`${name}.dlq`, { group: unique("g-dlq"), prefetch: 2000, startFrom: "earliest" })
        // everything that arrives until each invalid entry has one, or the topic stays quiet for 15 s
        // (one per origin record: a record parked twice must not end the read before the others came)
        const letters: Array<Envelope.Envelope> = []
        const origins = new Set<string>()
        yield* dlq.deliveries.pipe(
          Stream.tap((d) => d.ack),
          Stream.filter((d) => {
            const origin = d.envelope.headers[Headers.deadLetterOriginCoordinates] ?? ""
            if (origins.has(origin)) return false
            origins.add(origin)
            return true
          }),
          Stream.take(invalid.length),
          Stream.timeout("15 seconds"),
          Stream.runForEach((d) => Effect.sync(() => letters.push(d.envelope))),
          Effect.timeoutOrElse({ duration: "120 seconds", orElse: () => Effect.void })
        )
        // alive at the end: a valid message sent after the corpus is handled
        yield* Effect.promise(() =>
          producer.send({ topic: name, messages: [{ key: "final", value: Buffer.from(JSON.stringify({ id: "final", n: 0 })) }] })
        )
        yield* Deferred.await(finalHandled).pipe(Effect.timeout("30 seconds"))
        yield* Fiber.interrupt(consumer)

        const deadByKind: Record<string, number> = {}
        const withoutReason: Array<string> = []
        const deadLettered = new Set<PoisonCorpus.Entry>()
        for (const letter of letters) {
          const origin = JSON.parse(letter.headers[Headers.deadLetterOriginCoordinates] ?? "{}")
          const entry = coordinates.get(`${origin.partition}/${origin.offset}`)
          if (entry === undefined) continue
          deadLettered.add(entry)
          deadByKind[entry.kind] = (deadByKind[entry.kind] ?? 0) + 1
          if ((letter.headers[Headers.deadLetterReason] ?? "") === "") withoutReason.push(entry.kind)
        }
        const handledByKind: Record<string, number> = {}
        for (const entry of corpus) {
          if (entry.orderId !== undefined && handled.has(entry.orderId)) {
            handledByKind[entry.kind] = (handledByKind[entry.kind] ?? 0) + 1
          }
        }
        const counts = PoisonCorpus.countByKind(corpus)
        console.log(`kafka poison corpus (${corpus.length} entries):`)
        for (const kind of Object.keys(counts).sort()) {
          console.log(`  ${kind.padEnd(24)} ${String(counts[kind]).padStart(5)}  handled ${String(handledByKind[kind] ?? 0).padStart(5)}  dead-lettered ${String(deadByKind[kind] ?? 0).padStart(5)}`)
        }
        const unhandled = corpus.filter((e) => e.valid && !handled.has(e.orderId!))
        const missing = invalid.filter((e) => !deadLettered.has(e))
        console.log(`  total: handled ${handled.size - 1} of ${corpus.length - invalid.length} valid; dead-lettered ${deadLettered.size} of ${invalid.length} invalid; final message handled`)
        assert.deepStrictEqual(
          PoisonCorpus.countByKind(unhandled),
          {},
          `valid entries not handled: ${unhandled.slice(0, 5).map((e) => `${e.kind} ${JSON.stringify(e.headers)}`).join("; ")}`
        )
        assert.deepStrictEqual(PoisonCorpus.countByKind(missing), {}, "invalid entries without a dead letter")
        assert.deepStrictEqual(withoutReason, [], "dead letters without a reason")
        assert.isTrue(handled.has("final"))
      }), { timeout: 180_000 })
  })
})
