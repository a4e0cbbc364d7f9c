/**
 * The 10,000-entry poison corpus, published with raw nats.js, consumed with the typed `Consumer.run`
 * (idempotency on), on JetStream (dead letters stored in a stream) and on core NATS (at most once: published
 * at a pace the bounded subscription keeps up with; nothing dropped is asserted). Also dead letters the
 * server refuses (issue 9 item 4): messages near `max_payload` and with a header block near 64 KiB.
 */
import { assert, describe, it } from "@effect/vitest"
import type { NatsConnection } from "@nats-io/transport-node"
import { Consumer, Headers, Switchyard, Telemetry } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { Effect, Layer, Metric, References, Stream } from "effect"
import { NatsBroker, NatsTopology } from "../src/index.ts"
import { servers, unique } from "./helpers.ts"
import { eventually, manager, publishCore, publishJetStream, rawConnection, type RawMessage, storedCount, utf8 } from "./raw.ts"

// Thousands of dead letters each log a warning: keep the output to the counts.
const quiet = Layer.succeed(References.MinimumLogLevel, "Error")
const jetStreamLive = Switchyard.on(NatsBroker.layer({
  connection: { servers, name: "switchyard-nats-poison" },
  defaultStream: { storage: "memory", maxAge: "15 minutes" }
})).pipe(Layer.provideMerge(quiet))
const coreLive = Switchyard.on(NatsBroker.layerCore({ connection: { servers, name: "switchyard-nats-poison-core" } })).pipe(
  Layer.provideMerge(quiet)
)

const asRaw = (entry: PoisonCorpus.Entry): RawMessage => ({
  payload: entry.payload,
  headers: entry.contentType === undefined ? entry.headers : { ...entry.headers, "Content-Type": entry.contentType },
  msgId: entry.messageId
})

/** Wrong-schema messages the server takes but whose full dead letter it refuses. */
const refusedDeadLetters = (nc: NatsConnection, count: number): ReadonlyArray<RawMessage> => {
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0
      // Fits max_payload by itself; with the dead-letter headers it does not.
      ? { payload: utf8.encode(`{"id":${i},"pad":"${"p".repeat(maxPayload - 200)}"}`) }
      // A header block just under JetStream's 64 KiB limit; the dead-letter headers push it over.
      : { payload: utf8.encode(`{"id":${i}}`), headers: { "x-big": "h".repeat(64 * 1024 - 256) } })
}

/** The id a NATS consumer sees for an entry: its `x-switchyard-id` header when not blank, else its `Nats-Msg-Id`. */
const effectiveId = (entry: PoisonCorpus.Entry): string | undefined => {
  const own = entry.headers["x-switchyard-id"]?.trim()
  return own !== undefined && own !== "" ? own : entry.messageId
}

const run = (topic: ReturnType<typeof PoisonCorpus.topic>, group: string, prefetch: number) =>
  Effect.gen(function*() {
    const handled = new Set<string>()
    yield* Consumer.run(topic, (order) => Effect.sync(() => handled.add(order.id)), { group, idempotency: true, prefetch })
      .pipe(Effect.forkScoped)
    return handled
  })

const report = (broker: string, corpus: ReadonlyArray<PoisonCorpus.Entry>, handled: number, dead: number) => {
  const valid = corpus.filter((e) => e.valid).length
  console.log(`poison corpus on ${broker}, per kind:`, PoisonCorpus.countByKind(corpus))
  console.log(`${broker}: handled ${handled} of ${valid} valid; dead-lettered ${dead} of ${corpus.length - valid} invalid`)
}

/** Every valid entry handled; every invalid entry that carries its own id dead-lettered under that id. */
const assertOutcomes = (
  corpus: ReadonlyArray<PoisonCorpus.Entry>,
  handled: ReadonlySet<string>,
  deadLetteredIds: ReadonlyArray<string>
) => {
  const missing = corpus.filter((e) => e.orderId !== undefined && !handled.has(e.orderId)).map((e) => `${e.kind}:${e.orderId}`)
  assert.deepStrictEqual(missing, [], "valid messages not handled")
  const dead = new Set(deadLetteredIds)
  // A very long id (the corpus's 300 × "x") may be shortened in the dead-letter headers; the counts cover it.
  const notDead = corpus.filter((e) => {
    const id = effectiveId(e)
    return !e.valid && id !== undefined && id.length <= 200 && !dead.has(id)
  })
  assert.deepStrictEqual(notDead.map((e) => `${e.kind}:${e.index}`), [], "invalid messages not dead-lettered")
}

describe("poison corpus on JetStream", () => {
  it.live("10,000 raw messages: every valid one handled, every invalid one in the DLQ stream with a reason; alive", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const jsm = yield* manager(nc)
      const js = yield* NatsTopology.NatsTopology
      const topic = PoisonCorpus.topic(unique("sy.poison.js"))
      yield* js.streamFor(topic.name)
      const corpus = PoisonCorpus.make({ count: 10_000 })
      const handled = yield* run(topic, unique("g"), 256)
      yield* publishJetStream(nc, topic.name, corpus.map(asRaw))
      const expectedDead = corpus.filter((e) => !e.valid).length
      const dead = yield* eventually(storedCount(jsm, `${topic.name}.dlq`), (n) => n >= expectedDead, "90 seconds").pipe(
        // let anything still in flight land (shared ids) before counting
        Effect.andThen(Effect.sleep("1 second")),
        Effect.andThen(storedCount(jsm, `${topic.name}.dlq`))
      )
      yield* publishJetStream(nc, topic.name, [{ payload: utf8.encode(`{"id":"final","n":0}`) }])
      yield* eventually(Effect.sync(() => handled.has("final")), (done) => done)
      report("JetStream", corpus, handled.size - 1, dead)
      assert.isTrue(handled.has("final"), "the consumer is not alive at the end")
      assert.strictEqual(dead, corpus.filter((e) => !e.valid).length)
      const letters = yield* NatsBroker.replay(`${topic.name}.dlq`).pipe(Stream.take(dead), Stream.runCollect, Effect.timeout("60 seconds"))
      assert.isTrue(letters.every((l) => (l.headers[Headers.deadLetterReason] ?? "").length > 0), "a dead letter without a reason")
      assertOutcomes(corpus, handled, letters.map((l) => l.headers[Headers.deadLetterOriginalId] ?? ""))
    }).pipe(Effect.provide(jetStreamLive)), 180_000)

  it.live("dead letters over max_payload or the 64 KiB header limit end in the DLQ stream reduced; 40 of them never stop the group", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const jsm = yield* manager(nc)
      const js = yield* NatsTopology.NatsTopology
      const topic = PoisonCorpus.topic(unique("sy.poison.refused"))
      yield* js.streamFor(topic.name)
      const poison = refusedDeadLetters(nc, 40)
      // A small prefetch: before the fix each refused dead letter held an ack-pending slot, and 32 stopped the group.
      const handled = yield* run(topic, unique("g"), 32)
      const behind = Array.from({ length: 50 }, (_, i) => ({ payload: utf8.encode(`{"id":"behind-${i}","n":${i}}`) }))
      yield* publishJetStream(nc, topic.name, [...poison, ...behind], 10)
      const handledBehind = yield* eventually(Effect.sync(() => handled.size), (n) => n >= behind.length, "60 seconds")
      const dead = yield* eventually(storedCount(jsm, `${topic.name}.dlq`), (n) => n >= poison.length, "30 seconds")
      console.log(`refused dead letters on JetStream: ${dead} of ${poison.length} stored reduced; ${handledBehind} of ${behind.length} behind them handled`)
      assert.strictEqual(handledBehind, behind.length)
      assert.strictEqual(dead, poison.length)
      const letters = yield* NatsBroker.replay(`${topic.name}.dlq`).pipe(Stream.take(poison.length), Stream.runCollect, Effect.timeout("30 seconds"))
      for (const letter of letters) {
        assert.isAbove((letter.headers[Headers.deadLetterReason] ?? "").length, 0)
        assert.isUndefined(letter.headers["x-big"], "the original headers were not left out")
      }
    }).pipe(Effect.provide(jetStreamLive)), 120_000)
})

describe("poison corpus on core NATS", () => {
  it.live("10,000 raw messages at a pace the consumer keeps up with: every valid handled, every invalid dead-lettered; nothing dropped", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const topic = PoisonCorpus.topic(unique("sy.poison.core"))
      const group = unique("g")
      const corpus = PoisonCorpus.make({ count: 10_000 })
      const letters: Array<{ readonly reason: string; readonly originalId: string }> = []
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const sub = nc.subscribe(`${topic.name}.dlq`, {
            callback: (_err, m) => {
              letters.push({
                reason: m.headers?.last(Headers.deadLetterReason) ?? "",
                originalId: m.headers?.last(Headers.deadLetterOriginalId) ?? ""
              })
            }
          })
          await nc.flush()
          return sub
        }),
        (sub) => Effect.sync(() => sub.unsubscribe())
      )
      const prefetch = 1024
      const handled = yield* run(topic, group, prefetch)
      // Core NATS delivers only to subscriptions the server has: probe until the consumer is there.
      yield* publishCore(nc, topic.name, [{ payload: utf8.encode(`{"id":"probe","n":-1}`) }]).pipe(
        Effect.andThen(Effect.sleep("50 millis")),
        Effect.repeat({ until: () => handled.has("probe") }),
        Effect.timeout("10 seconds")
      )
      const skipped = Metric.value(Telemetry.duplicates).pipe(Effect.map((state) => Number(state.count)))
      const skippedBefore = yield* skipped
      const settled = Effect.zipWith(skipped, Effect.sync(() => handled.size - 1 + letters.length), (dup, n) => n + dup - skippedBefore)
      const raw = corpus.map(asRaw)
      // Batches no larger than the subscription's queue, each waited for (handled, dead-lettered or skipped as
      // a duplicate): at-most-once drops nothing then.
      const batch = prefetch / 4
      for (let start = 0; start < raw.length; start += batch) {
        yield* publishCore(nc, topic.name, raw.slice(start, start + batch), batch)
        const expected = Math.min(start + batch, raw.length)
        yield* eventually(settled, (n) => n >= expected, "20 seconds")
      }
      yield* publishCore(nc, topic.name, [{ payload: utf8.encode(`{"id":"final","n":0}`) }])
      yield* eventually(Effect.sync(() => handled.has("final")), (done) => done)
      report("core NATS", corpus, handled.size - 2, letters.length)
      const dropped = yield* Metric.value(Metric.withAttributes(NatsBroker.droppedDeliveries, {
        "messaging.destination.name": topic.name,
        "messaging.consumer.group.name": group
      }))
      assert.strictEqual(dropped.count, 0)
      assert.isTrue(handled.has("final"), "the consumer is not alive at the end")
      assert.strictEqual(letters.length, corpus.filter((e) => !e.valid).length)
      assert.isTrue(letters.every((l) => l.reason.length > 0), "a dead letter without a reason")
      assertOutcomes(corpus, handled, letters.map((l) => l.originalId))
    }).pipe(Effect.provide(coreLive)), 180_000)
})


