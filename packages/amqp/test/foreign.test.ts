/**
 * Messages Switchyard did not write, published with the raw amqplib client, through the typed
 * `Consumer.run`: ids, timestamps, and dead letters amqplib would refuse to encode.
 */
import { assert, layer } from "@effect/vitest"
import type * as amqp from "amqplib"
import { Broker, Consumer, Headers } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { Clock, Effect, Fiber } from "effect"
import { AmqpBroker, AmqpTopology } from "../src/index.ts"
import { RawAmqp } from "../src/testing/index.ts"
import { awaitQueue, collect, eventually, message, options, rawChannel, rawPublish, takeN, unique } from "./helpers.ts"

const utf8 = new TextEncoder()
const order = (id: string, n = 1) => utf8.encode(JSON.stringify({ id, n }))

/** Declares the destination and the group's queue as the adapter does, so raw publishes are kept. */
const declareGroup = (channel: amqp.ConfirmChannel, destination: string, group: string) =>
  RawAmqp.declare(channel, AmqpTopology.consumerGroup(destination, group))

// A long publish timeout: a dead letter retried as a connection problem would hold the consumer for longer
// than these tests may run, so each test's own timeout is what proves "promptly".
const BrokerLive = AmqpBroker.layer({ ...options, publishTimeout: "60 seconds" })

layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("foreign AMQP messages", (it) => {
  it.effect("messages without message_id are all handled with idempotency on, and their dead letters are distinct", () =>
    Effect.gen(function*() {
      const channel = yield* rawChannel
      const destination = unique("no-id")
      yield* declareGroup(channel, destination, "g")
      const handled: Array<string> = []
      const envelopes: Array<Envelope.Envelope> = []
      const fiber = yield* Consumer.run(
        PoisonCorpus.topic(destination),
        (o, envelope) => Effect.sync(() => { handled.push(o.id); envelopes.push(envelope) }),
        { group: "g", idempotency: true }
      ).pipe(Effect.forkChild)
      const valid = Array.from({ length: 50 }, (_, i) => ({ content: order(`o-${i}`, i) }))
      const invalid = Array.from({ length: 50 }, (_, i) => ({ content: utf8.encode(`not json ${i}`) }))
      yield* rawPublish(channel, destination, [...valid, ...invalid])
      const dead = yield* awaitQueue(`${destination}.dlq`, 50)
      yield* eventually(() => handled.length >= 50)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual([...handled].sort(), valid.map((_, i) => `o-${i}`).sort())
      assert.isTrue(envelopes.every((e) => e.idSource === "generated" && e.id !== ""))
      assert.strictEqual(new Set(envelopes.map((e) => e.id)).size, 50)
      assert.strictEqual(dead.length, 50)
      assert.strictEqual(new Set(dead.map((m) => String(m.properties.messageId))).size, 50)
      assert.strictEqual(new Set(dead.map((m) => String(m.properties.headers?.[Headers.deadLetterOriginalId]))).size, 50)
      assert.deepStrictEqual(
        dead.map((m) => m.content.toString("utf8")).sort(),
        invalid.map((m) => Buffer.from(m.content).toString("utf8")).sort()
      )
    }), 20_000)

  it.effect("timestamps: the x-switchyard-timestamp header, else the AMQP timestamp property (seconds), else receive time", () =>
    Effect.gen(function*() {
      const channel = yield* rawChannel
      const destination = unique("timestamps")
      yield* declareGroup(channel, destination, "g")
      const seen = new Map<string, Envelope.Envelope>()
      const fiber = yield* Consumer.run(
        PoisonCorpus.topic(destination),
        (o, envelope) => Effect.sync(() => seen.set(o.id, envelope)),
        { group: "g" }
      ).pipe(Effect.forkChild)
      const before = yield* Clock.currentTimeMillis
      yield* rawPublish(channel, destination, [
        { content: order("property-only"), options: { timestamp: 1_700_000_000 } },
        { content: order("garbage-header"), options: { timestamp: 1_700_000_001, headers: { [Headers.timestamp]: "NaN" } } },
        { content: order("numeric-header"), options: { timestamp: 1_700_000_002, headers: { [Headers.timestamp]: 1_700_000_002_345 } } },
        { content: order("header"), options: { timestamp: 1_700_000_003, headers: { [Headers.timestamp]: "1700000003456" } } },
        { content: order("none") },
        { content: order("garbage-only"), options: { headers: { [Headers.timestamp]: "-5" } } }
      ])
      yield* eventually(() => seen.size === 6)
      const after = yield* Clock.currentTimeMillis
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(seen.get("property-only")!.timestamp, 1_700_000_000_000)
      assert.strictEqual(seen.get("garbage-header")!.timestamp, 1_700_000_001_000)
      assert.strictEqual(seen.get("numeric-header")!.timestamp, 1_700_000_002_345)
      assert.strictEqual(seen.get("header")!.timestamp, 1_700_000_003_456)
      for (const id of ["none", "garbage-only"]) {
        const timestamp = seen.get(id)!.timestamp
        assert.isTrue(timestamp >= before && timestamp <= after, `${id}: ${timestamp} not in [${before}, ${after}]`)
      }
      // the timestamp header is Switchyard's metadata, not an application header
      assert.isUndefined(seen.get("header")!.headers[Headers.timestamp])
    }), 20_000)

  it.effect("header names are matched as AMQP defines them: a content-type table entry is a header, the property is the content type", () =>
    Effect.gen(function*() {
      const channel = yield* rawChannel
      const destination = unique("header-names")
      yield* declareGroup(channel, destination, "g")
      const seen: Array<Envelope.Envelope> = []
      const fiber = yield* Consumer.run(PoisonCorpus.topic(destination), (_, e) => Effect.sync(() => seen.push(e)), { group: "g" })
        .pipe(Effect.forkChild)
      yield* rawPublish(channel, destination, [
        { content: order("a"), options: { contentType: "application/json", headers: { "Content-Type": "text/plain", "X-Tenant": "acme" } } }
      ])
      yield* eventually(() => seen.length === 1)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(seen[0]!.contentType, "application/json")
      assert.deepStrictEqual(seen[0]!.headers, { "Content-Type": "text/plain", "X-Tenant": "acme" })
    }), 20_000)

  it.effect("dead letters amqplib would refuse (NaN timestamp, id past 255 bytes, header table past 64 KiB) end in the DLQ; valid messages behind them are handled", () =>
    Effect.gen(function*() {
      const channel = yield* rawChannel
      const destination = unique("unpublishable")
      yield* declareGroup(channel, destination, "g")
      const handled: Array<string> = []
      const fiber = yield* Consumer.run(PoisonCorpus.topic(destination), (o) => Effect.sync(() => handled.push(o.id)), {
        group: "g",
        idempotency: true
      }).pipe(Effect.forkChild)
      const longId = "L".repeat(250)
      // 65,400 bytes of header: the raw publish fits amqplib's 65,536-byte table buffer, the dead letter's
      // reason headers do not
      const bigHeader = "h".repeat(65_400)
      yield* rawPublish(channel, destination, [
        { content: utf8.encode("{bad"), options: { messageId: "nan-ts", headers: { [Headers.timestamp]: "NaN" } } },
        { content: order("after-nan") },
        { content: utf8.encode("{bad"), options: { messageId: longId } },
        { content: order("after-long-id") },
        { content: utf8.encode("{bad"), options: { messageId: "big-header", headers: { "x-big": bigHeader } } },
        { content: order("after-big-header") }
      ])
      const dead = yield* awaitQueue(`${destination}.dlq`, 3)
      yield* eventually(() => handled.length === 3)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(handled, ["after-nan", "after-long-id", "after-big-header"])
      const byOrigin = new Map(dead.map((m) => [String(m.properties.headers?.[Headers.deadLetterOriginalId]), m]))
      assert.sameMembers([...byOrigin.keys()], ["nan-ts", longId, "big-header"])
      for (const m of dead) assert.isString(m.properties.headers?.[Headers.deadLetterReason])
      // AMQP's message_id is a shortstr: a long id is carried in a bounded form
      assert.isAtMost(Buffer.byteLength(String(byOrigin.get(longId)!.properties.messageId)), 255)
      assert.isTrue(Number.isFinite(Number(byOrigin.get("nan-ts")!.properties.headers?.[Headers.timestamp])))
    }), 20_000)

  it.effect("an id past AMQP's 255-byte message_id (multi-byte characters) round-trips whole (x-switchyard-id header, bounded message_id)", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("long-id")
      const received = yield* collect(destination, "g")
      // within the adapter kit's 255 characters for an id, past AMQP's 255 bytes
      const ids = ["é".repeat(200), "日本".repeat(100), "short"]
      yield* broker.publish(destination, ids.map((id) => message(id, "x")))
      const got = yield* takeN(received, 3)
      assert.deepStrictEqual(got.map((d) => d.envelope.id), ids)
      assert.isTrue(got.every((d) => d.envelope.idSource === "message"))
    }), 20_000)

  it.effect("telemetry attributes of a delivery: the routing key it was published with and its delivery tag", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const channel = yield* rawChannel
      const destination = unique("telemetry")
      yield* declareGroup(channel, destination, "g")
      const seen: Array<Envelope.Envelope> = []
      const fiber = yield* Consumer.run(PoisonCorpus.topic(destination), (_, e) => Effect.sync(() => seen.push(e)), { group: "g" })
        .pipe(Effect.forkChild)
      yield* rawPublish(channel, destination, [{ content: order("t-1"), routingKey: "eu.orders.created" }])
      yield* eventually(() => seen.length === 1)
      yield* Fiber.interrupt(fiber)
      const envelope = seen[0]!
      assert.strictEqual(envelope.coordinates.routingKey, "eu.orders.created")
      assert.deepStrictEqual(broker.telemetryAttributes?.(envelope), {
        "messaging.rabbitmq.destination.routing_key": "eu.orders.created",
        "messaging.rabbitmq.message.delivery_tag": envelope.coordinates.deliveryTag!
      })
    }), 20_000)
})
