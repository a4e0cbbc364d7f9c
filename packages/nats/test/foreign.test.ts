/**
 * Messages Switchyard did not write, published with raw nats.js and consumed through the typed paths
 * (`Consumer.run`): ids, timestamps and header names (issue 9, items 3 and 5).
 */
import { assert, describe, it } from "@effect/vitest"
import { Consumer, Headers, Switchyard } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import type { Envelope } from "@switchyard/core"
import type { NatsConnection } from "@nats-io/transport-node"
import { Effect, Stream } from "effect"
import { NatsBroker, NatsTopology } from "../src/index.ts"
import { servers, unique } from "./helpers.ts"
import { eventually, manager, publishCore, publishJetStream, rawConnection, type RawMessage, storedCount, utf8 } from "./raw.ts"

const jetStreamLive = Switchyard.on(NatsBroker.layer({
  connection: { servers, name: "switchyard-nats-foreign-test" },
  defaultStream: { storage: "memory", maxAge: "15 minutes" }
}))
const coreLive = Switchyard.on(NatsBroker.layerCore({ connection: { servers, name: "switchyard-nats-foreign-core" } }))

const invalid = (n: number): ReadonlyArray<RawMessage> =>
  Array.from({ length: n }, (_, i) => ({ payload: utf8.encode(`not json ${i}`) }))
const valid = (n: number, prefix: string): ReadonlyArray<RawMessage> =>
  Array.from({ length: n }, (_, i) => ({ payload: utf8.encode(JSON.stringify({ id: `${prefix}-${i}`, n: i })) }))

/** Runs a consumer with idempotency on, recording what it handled, for the test's scope. */
const runRecording = (topic: ReturnType<typeof PoisonCorpus.topic>, group: string, prefetch = 4096) =>
  Effect.gen(function*() {
    const handled: Array<{ readonly id: string; readonly envelope: Envelope.Envelope }> = []
    const fiber = yield* Consumer.run(topic, (order, envelope) => Effect.sync(() => handled.push({ id: order.id, envelope })), {
      group,
      idempotency: true,
      prefetch
    }).pipe(Effect.forkScoped)
    return { handled, fiber }
  })

/**
 * Core NATS delivers only to subscriptions the server already has: publishes probes until the consumer
 * handled one, then forgets the probes.
 */
const untilSubscribed = (nc: NatsConnection, subject: string, handled: Array<{ readonly id: string }>) =>
  publishCore(nc, subject, [{ payload: utf8.encode(`{"id":"probe","n":-1}`) }]).pipe(
    Effect.andThen(Effect.sleep("50 millis")),
    Effect.repeat({ until: () => handled.length > 0 }),
    Effect.timeout("10 seconds"),
    Effect.andThen(Effect.sleep("100 millis")),
    Effect.andThen(Effect.sync(() => handled.splice(0, handled.length)))
  )

describe("foreign messages on JetStream", () => {
  it.live("2,000 invalid messages without ids: 2,000 dead letters stored, each with its own id", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const jsm = yield* manager(nc)
      const topic = PoisonCorpus.topic(unique("sy.foreign.noid"))
      const broker = yield* NatsTopology.NatsTopology
      yield* broker.streamFor(topic.name) // the stream exists before the raw publisher writes
      yield* runRecording(topic, unique("g"))
      yield* publishJetStream(nc, topic.name, invalid(2_000))
      const stored = yield* eventually(storedCount(jsm, `${topic.name}.dlq`), (n) => n >= 2_000, "40 seconds")
      assert.strictEqual(stored, 2_000)
      // Each dead letter names its own origin: `<stream>/<sequence>`, never "".
      const originals = yield* deadLetterOriginalIds(`${topic.name}.dlq`, 2_000)
      assert.strictEqual(new Set(originals).size, 2_000)
      const stream = yield* broker.streamFor(topic.name)
      assert.isTrue(originals.every((id) => id.startsWith(`${stream}/`)), originals[0])
    }).pipe(Effect.provide(jetStreamLive)), 60_000)

  it.live("100 valid messages without ids, idempotency on: all 100 handled, ids from stream/sequence", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const topic = PoisonCorpus.topic(unique("sy.foreign.valid"))
      const broker = yield* NatsTopology.NatsTopology
      const stream = yield* broker.streamFor(topic.name)
      const { handled } = yield* runRecording(topic, unique("g"))
      yield* publishJetStream(nc, topic.name, valid(100, "v"))
      yield* eventually(Effect.sync(() => handled.length), (n) => n >= 100)
      assert.strictEqual(handled.length, 100)
      assert.deepStrictEqual(handled.map((h) => h.envelope.id), handled.map((_, i) => `${stream}/${i + 1}`))
      assert.isTrue(handled.every((h) => h.envelope.idSource === "broker"))
    }).pipe(Effect.provide(jetStreamLive)), 30_000)

  it.live("no timestamp header: the server's stored time; canonical Content-Type and X-Switchyard-Id are read", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const jsm = yield* manager(nc)
      const topic = PoisonCorpus.topic(unique("sy.foreign.time"))
      const broker = yield* NatsTopology.NatsTopology
      const stream = yield* broker.streamFor(topic.name)
      const { handled } = yield* runRecording(topic, unique("g"))
      yield* publishJetStream(nc, topic.name, [
        { payload: utf8.encode(`{"id":"a","n":1}`) },
        { payload: utf8.encode(`{"id":"b","n":2}`), headers: { "Content-Type": "application/json", "X-Switchyard-Id": "own-b" } },
        {
          payload: utf8.encode(`{"id":"c","n":3}`),
          // Switchyard's exact names win over the canonical spellings, whatever the order.
          headers: { "x-switchyard-id": "exact-c", "X-Switchyard-Id": "canonical-c", "Content-Type": "text/x-canonical", "content-type": "application/json" }
        },
        { payload: utf8.encode(`{"id":"d","n":4}`), headers: { "x-switchyard-timestamp": "NaN", "Nats-Msg-Id": "native-d" } }
      ])
      yield* eventually(Effect.sync(() => handled.length), (n) => n >= 4)
      const byId = new Map(handled.map((h) => [h.id, h.envelope]))
      for (const [order, sequence] of [["a", 1], ["d", 4]] as const) {
        const storedAt = yield* Effect.promise(() => jsm.streams.getMessage(stream, { seq: sequence }))
        assert.strictEqual(byId.get(order)?.timestamp, storedAt?.time.getTime(), order)
      }
      assert.isAbove(byId.get("a")!.timestamp, 1_600_000_000_000)
      assert.strictEqual(byId.get("b")?.contentType, "application/json")
      assert.strictEqual(byId.get("b")?.id, "own-b")
      assert.deepStrictEqual(byId.get("b")?.headers, {})
      assert.strictEqual(byId.get("c")?.id, "exact-c")
      assert.strictEqual(byId.get("c")?.contentType, "application/json")
      assert.strictEqual(byId.get("d")?.id, "native-d")
      assert.strictEqual(byId.get("a")?.contentType, "application/octet-stream")
    }).pipe(Effect.provide(jetStreamLive)), 30_000)
})

describe("foreign messages on core NATS", () => {
  it.live("2,000 invalid messages without ids: 2,000 dead letters, each naming a distinct original id", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const topic = PoisonCorpus.topic(unique("sy.foreign.core.noid"))
      const dead = yield* collectRaw(nc, `${topic.name}.dlq`)
      const { handled } = yield* runRecording(topic, unique("g"))
      yield* untilSubscribed(nc, topic.name, handled)
      yield* publishCore(nc, topic.name, invalid(2_000), 200)
      const received = yield* eventually(Effect.sync(() => dead.length), (n) => n >= 2_000)
      assert.strictEqual(received, 2_000)
      const originals = dead.map((d) => d[Headers.deadLetterOriginalId] ?? "")
      assert.strictEqual(new Set(originals).size, 2_000)
      assert.isFalse(originals.includes(""))
    }).pipe(Effect.provide(coreLive)), 60_000)

  it.live("100 valid messages without ids, idempotency on: all 100 handled; receive time as timestamp", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const topic = PoisonCorpus.topic(unique("sy.foreign.core.valid"))
      const { handled } = yield* runRecording(topic, unique("g"))
      yield* untilSubscribed(nc, topic.name, handled)
      const before = Date.now()
      yield* publishCore(nc, topic.name, valid(100, "v"))
      yield* eventually(Effect.sync(() => handled.length), (n) => n >= 100)
      const after = Date.now()
      assert.strictEqual(handled.length, 100)
      assert.strictEqual(new Set(handled.map((h) => h.envelope.id)).size, 100)
      assert.isTrue(handled.every((h) => h.envelope.idSource === "generated"))
      for (const { envelope } of handled) {
        assert.isAtLeast(envelope.timestamp, before)
        assert.isAtMost(envelope.timestamp, after)
      }
    }).pipe(Effect.provide(coreLive)), 30_000)

  it.live("ids from Nats-Msg-Id or X-Switchyard-Id; Content-Type in either spelling", () =>
    Effect.gen(function*() {
      const nc = yield* rawConnection
      const topic = PoisonCorpus.topic(unique("sy.foreign.core.names"))
      const { handled } = yield* runRecording(topic, unique("g"))
      yield* untilSubscribed(nc, topic.name, handled)
      yield* publishCore(nc, topic.name, [
        { payload: utf8.encode(`{"id":"a","n":1}`), headers: { "Nats-Msg-Id": "native-a", "Content-Type": "application/json" } },
        { payload: utf8.encode(`{"id":"b","n":2}`), headers: { "X-Switchyard-Id": "own-b", "content-type": "application/json" } },
        { payload: utf8.encode(`{"id":"c","n":3}`), headers: { "x-switchyard-timestamp": "1700000000123" } }
      ])
      yield* eventually(Effect.sync(() => handled.length), (n) => n >= 3)
      const byId = new Map(handled.map((h) => [h.id, h.envelope]))
      assert.strictEqual(byId.get("a")?.id, "native-a")
      assert.strictEqual(byId.get("a")?.idSource, "message")
      assert.strictEqual(byId.get("a")?.contentType, "application/json")
      assert.strictEqual(byId.get("b")?.id, "own-b")
      assert.strictEqual(byId.get("b")?.contentType, "application/json")
      assert.strictEqual(byId.get("c")?.timestamp, 1_700_000_000_123)
    }).pipe(Effect.provide(coreLive)), 30_000)
})

/** The original ids named by the first `n` dead letters of a destination (replayed, nothing acked). */
const deadLetterOriginalIds = (destination: string, n: number) =>
  Effect.gen(function*() {
    const all = yield* NatsBroker.replay(destination).pipe(Stream.take(n), Stream.runCollect, Effect.timeout("20 seconds"))
    return all.map((e) => e.headers[Headers.deadLetterOriginalId] ?? "")
  })

/** Collects the headers of every core message on a subject for the scope (a raw subscription). */
const collectRaw = (nc: NatsConnection, subject: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const seen: Array<Readonly<Record<string, string>>> = []
      const sub = nc.subscribe(subject, {
        callback: (_err, m) => {
          const h: Record<string, string> = {}
          if (m.headers !== undefined) for (const [k, v] of m.headers) h[k] = v[v.length - 1] ?? ""
          seen.push(h)
        }
      })
      await nc.flush()
      return { seen, sub }
    }),
    ({ sub }) => Effect.sync(() => sub.unsubscribe())
  ).pipe(Effect.map(({ seen }) => seen))

