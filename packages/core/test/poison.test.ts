/**
 * The poison corpus (10,000 messages as foreign producers send them) through `Consumer.run` on the in-memory
 * broker, idempotency on: the consumer is alive at the end, every valid order is handled once, every invalid
 * entry is in `poison.dlq` once, with a reason. Published with the byte-level `Broker.publish` (the broker's
 * "raw client"): each entry's headers as given, its id or an empty one, its content type when it has one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker, Consumer, Envelope, Headers as H, MemoryBroker, Switchyard } from "@switchyard/core"
import { PoisonCorpus, TestKit } from "@switchyard/core/testing"
import { Array as Arr, Effect, Fiber, References } from "effect"

const destination = "poison"
const topic = PoisonCorpus.topic(destination)

describe("poison corpus on the in-memory broker", () => {
  it.effect("10,000 raw messages: consumer alive, every valid order handled, every invalid one dead-lettered with a reason", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const inspect = yield* MemoryBroker.MemoryBroker
      const corpus = PoisonCorpus.make({ count: 10_000 })
      // Published after the corpus: handled only if the consumer survived all of it.
      const final: PoisonCorpus.Entry = {
        index: corpus.length,
        kind: "valid",
        valid: true,
        orderId: "final-order",
        payload: new TextEncoder().encode(JSON.stringify({ id: "final-order", n: corpus.length })),
        headers: {},
        messageId: "final",
        contentType: "application/json"
      }
      const entries = [...corpus, final]

      // The id each entry is known by: its own, or the one the broker derives from where it landed.
      const idOf = new Map<PoisonCorpus.Entry, string>()
      for (const batch of Arr.chunksOf(entries, 500)) {
        const receipts = yield* broker.publish(
          destination,
          batch.map((entry) =>
            Envelope.outgoing(entry.payload, {
              id: entry.messageId ?? "",
              headers: entry.headers,
              ...(entry.contentType === undefined ? {} : { contentType: entry.contentType })
            })
          )
        )
        batch.forEach((entry, i) => {
          const at = receipts[i]!.coordinates
          idOf.set(entry, entry.messageId ?? `${destination}/${at.partition}/${at.offset}`)
        })
      }

      const handled = new Map<string, number>()
      const consumer = yield* Consumer.run(
        topic,
        (order) => Effect.sync(() => handled.set(order.id, (handled.get(order.id) ?? 0) + 1)),
        { group: "poison-test", concurrency: 8, ordering: "none", idempotency: true }
      ).pipe(Effect.forkChild)
      const done = yield* TestKit.advanceUntil(
        Effect.map(inspect.lag(destination, "poison-test"), (lag) => lag === 0),
        { within: "1 minute", step: "100 millis" }
      )
      assert.isTrue(done, "the group did not get through the corpus")
      assert.isUndefined(consumer.pollUnsafe(), "the consumer stopped")
      assert.strictEqual(handled.get("final-order"), 1, "the final valid message was not handled")
      yield* Fiber.interrupt(consumer)

      const dead = yield* inspect.deadLetters(destination)
      const deadById = new Map(dead.map((d) => [d.headers[H.deadLetterOriginalId], d]))
      const outcome = (entry: PoisonCorpus.Entry) =>
        entry.orderId !== undefined && handled.has(entry.orderId)
          ? "handled"
          : deadById.has(idOf.get(entry))
          ? "dead-lettered"
          : "missing"
      const byKind: Record<string, Record<string, number>> = {}
      for (const entry of corpus) {
        const row = byKind[entry.kind] ??= { total: 0, handled: 0, "dead-lettered": 0, missing: 0 }
        row.total!++
        row[outcome(entry)]!++
      }
      const unexpected = [...handled.keys()].filter((id) => !entries.some((e) => e.orderId === id))
      console.log(`poison corpus (memory): per kind ${JSON.stringify(PoisonCorpus.countByKind(corpus))}`)
      console.table(byKind)
      console.log(
        `memory: handled ${handled.size} valid, dead-lettered ${dead.length}; values handled that no valid entry ` +
          `carries: ${JSON.stringify(unexpected)}`
      )

      for (const entry of corpus) {
        const result = outcome(entry)
        assert.strictEqual(result, entry.valid ? "handled" : "dead-lettered", `${entry.kind} #${entry.index}`)
        if (!entry.valid) assert.notStrictEqual(deadById.get(idOf.get(entry))?.headers[H.deadLetterReason] ?? "", "")
      }
      assert.deepStrictEqual(unexpected, [], "values that no valid entry carries were handled")
      assert.isTrue([...handled.values()].every((n) => n === 1), "a valid order was handled twice")
      assert.strictEqual(dead.length, corpus.filter((e) => !e.valid).length, "one dead letter per invalid entry")
    }).pipe(
      Effect.provide(Switchyard.layerMemory({ partitions: 4 })),
      Effect.provideService(References.MinimumLogLevel, "None")
    ), { timeout: 120_000 })
})
