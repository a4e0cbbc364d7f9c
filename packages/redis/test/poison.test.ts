/**
 * The poison corpus (10,000 foreign entries: valid orders with full, missing or garbage metadata; invalid
 * JSON, wrong schema, empty, invalid UTF-8, oversized payloads and headers) written with the raw node-redis
 * client, plus entries no Switchyard producer writes (no `payload` field, only unrelated fields, an empty field
 * name, a repeated `payload`), consumed with the typed `Consumer.run` (idempotency on): the consumer stays
 * alive, every valid order is handled, every invalid entry is dead-lettered in `<stream>.dlq` with a reason.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Schema, Stream } from "effect"
import { Broker, Consumer, type Envelope, Headers } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { rawClient, testLayer, unique } from "./helpers.ts"

/** The fields a foreign producer writes for an entry: payload, its headers as given, id and content type only when set. */
const rawFields = (entry: PoisonCorpus.Entry): Array<string | Buffer> => {
  const fields: Array<string | Buffer> = ["payload", Buffer.from(entry.payload)]
  for (const [name, value] of Object.entries(entry.headers)) fields.push(name, value)
  if (entry.messageId !== undefined) fields.push(Headers.messageId, entry.messageId)
  if (entry.contentType !== undefined) fields.push(Headers.contentType, entry.contentType)
  return fields
}

/** Entries no Switchyard producer writes: all must be dead-lettered (none has a decodable payload). */
const malformed: ReadonlyArray<ReadonlyArray<string | Buffer>> = [
  ["order", "42", "amount", "10"],
  ["", ""],
  ["x-switchyard-id", "no-payload-here"],
  ["payload", "not json", "payload", JSON.stringify({ id: "second-payload-ignored", n: 1 })],
  ["PAYLOAD", JSON.stringify({ id: "wrong-case", n: 1 })]
]

const Coordinates = Schema.fromJsonString(Schema.Struct({ offset: Schema.String }))

describe("redis: poison corpus", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: Duration.minutes(3) })((it) => {
    it.effect("10,000 raw entries and malformed ones: consumer alive, every valid order handled, every invalid one dead-lettered with a reason", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const raw = yield* rawClient()
        const name = unique("poison")
        const corpus = PoisonCorpus.make({ count: 10_000 })
        const byEntryId = new Map<string, string>()
        for (let at = 0; at < corpus.length; at += 500) {
          const batch = corpus.slice(at, at + 500)
          const ids = yield* Effect.promise(() => Promise.all(batch.map((e) => raw.sendCommand(["XADD", name, "*", ...rawFields(e)]))))
          ids.forEach((id, i) => byEntryId.set(String(id), batch[i]!.kind))
        }
        for (const fields of malformed) {
          const id = yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", ...fields]))
          byEntryId.set(String(id), "malformed")
        }
        const invalidCount = corpus.filter((e) => !e.valid).length + malformed.length

        const handled = new Set<string>()
        const finalHandled = yield* Deferred.make<void>()
        const consumer = yield* Consumer.run(PoisonCorpus.topic(name), (order) =>
          Effect.suspend(() => {
            handled.add(order.id)
            return order.id === "final" ? Deferred.succeed(finalHandled, undefined) : Effect.void
          }), { group: unique("g"), concurrency: 8, idempotency: true }).pipe(Effect.forkChild)

        const dlq = yield* broker.subscribe(`${name}.dlq`, { group: "ops", prefetch: 2000, startFrom: "earliest" })
        const letters: Array<Envelope.Envelope> = []
        yield* dlq.deliveries.pipe(
          Stream.tap((d) => d.ack),
          Stream.take(invalidCount),
          Stream.timeout("15 seconds"),
          Stream.runForEach((d) => Effect.sync(() => letters.push(d.envelope))),
          Effect.timeoutOrElse({ duration: "120 seconds", orElse: () => Effect.void })
        )
        yield* Effect.promise(() => raw.sendCommand(["XADD", name, "*", "payload", JSON.stringify({ id: "final", n: 0 })]))
        yield* Deferred.await(finalHandled).pipe(Effect.timeout("30 seconds"))
        yield* Fiber.interrupt(consumer)

        const deadByKind: Record<string, number> = {}
        const withoutReason: Array<string> = []
        const deadLettered = new Set<string>()
        for (const letter of letters) {
          const origin = Schema.decodeUnknownOption(Coordinates)(letter.headers[Headers.deadLetterOriginCoordinates])
          if (origin._tag === "None") continue
          const kind = byEntryId.get(origin.value.offset)
          if (kind === undefined) continue
          deadLettered.add(origin.value.offset)
          deadByKind[kind] = (deadByKind[kind] ?? 0) + 1
          if ((letter.headers[Headers.deadLetterReason] ?? "") === "") withoutReason.push(kind)
        }
        const counts = { ...PoisonCorpus.countByKind(corpus), malformed: malformed.length }
        console.log(`redis poison corpus (${corpus.length} + ${malformed.length} entries):`)
        for (const kind of Object.keys(counts).sort()) {
          console.log(`  ${kind.padEnd(24)} ${String(counts[kind as keyof typeof counts]).padStart(5)}  dead-lettered ${String(deadByKind[kind] ?? 0).padStart(5)}`)
        }
        const unhandled = corpus.filter((e) => e.valid && !handled.has(e.orderId!))
        console.log(`  handled ${handled.size - 1} valid; dead-lettered ${deadLettered.size} of ${invalidCount} invalid; final handled`)
        assert.deepStrictEqual(PoisonCorpus.countByKind(unhandled), {}, "valid entries not handled")
        assert.strictEqual(deadLettered.size, invalidCount, `dead letters: ${JSON.stringify(deadByKind)}`)
        assert.strictEqual(deadByKind["malformed"], malformed.length)
        assert.deepStrictEqual(withoutReason, [], "dead letters without a reason")
        assert.isFalse(handled.has("second-payload-ignored") || handled.has("wrong-case"))
        yield* Effect.promise(() => raw.sendCommand(["DEL", name, `${name}.dlq`]))
      }), { timeout: 180_000 })
  })
})
