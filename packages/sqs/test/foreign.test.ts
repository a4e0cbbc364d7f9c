/**
 * Messages written by the raw AWS SDK (no Switchyard metadata, malformed metadata, non-JSON bodies, the poison
 * corpus) through the typed paths (`Subscriber`, `Consumer.run`); binary payloads byte-exact; SQS's limits.
 */
import { assert, layer } from "@effect/vitest"
import {
  CreateQueueCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry
} from "@aws-sdk/client-sqs"
import { Broker, Consumer, Envelope, Headers, Subscriber, Switchyard, Topic } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { Duration, Effect, Fiber, Result, Schedule, Schema, Stream } from "effect"
import { SqsTopology } from "../src/index.ts"
import { bodyOf } from "../src/internal/envelope.ts"
import { brokerOn, TestServer, unique } from "./helpers.ts"

const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })
const encoder = new TextEncoder()

/** Sends raw SDK entries (batches of 10); the SQS message ids, in order. */
const sendRaw = (destination: string, entries: ReadonlyArray<Omit<SendMessageBatchRequestEntry, "Id">>) =>
  Effect.gen(function*() {
    const { raw } = yield* TestServer
    const topology = yield* SqsTopology.SqsTopology
    const { url } = yield* topology.queue(destination)
    const chunks = Array.from({ length: Math.ceil(entries.length / 10) }, (_, i) => entries.slice(i * 10, i * 10 + 10))
    const ids = yield* Effect.forEach(chunks, (chunk) =>
      Effect.promise(() =>
        raw.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: chunk.map((e, i) => ({ ...e, Id: String(i) })) }))
      ).pipe(Effect.map((r) => {
        assert.deepStrictEqual(r.Failed ?? [], [], `the raw send was refused: ${JSON.stringify(r.Failed)}`)
        const byId = new Map((r.Successful ?? []).map((s) => [s.Id, s.MessageId ?? ""]))
        return chunk.map((_, i) => byId.get(String(i)) ?? "")
      })), { concurrency: 4 })
    return ids.flat()
  })

const take = (destination: string, count: number) =>
  Effect.scoped(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const sub = yield* broker.subscribe(destination, { group: "reader", prefetch: 50, startFrom: "earliest" })
    return yield* sub.deliveries.pipe(
      Stream.mapEffect((d) => Effect.as(d.ack, d.envelope)),
      Stream.take(count),
      Stream.timeout(Duration.seconds(60)),
      Stream.runCollect
    )
  }))

layer(Switchyard.on(brokerOn()), { excludeTestServices: true, timeout: Duration.minutes(3) })("sqs: foreign messages", (it) => {
  it.effect("raw messages without, and with malformed, metadata come through the typed Subscriber; the broker's id is stable across a nack", () =>
    Effect.gen(function*() {
      const destination = unique("foreign")
      const topic = Topic.make(destination, Order)
      const ids = yield* sendRaw(destination, [
        { MessageBody: JSON.stringify({ id: "plain", n: 1 }) },
        {
          MessageBody: JSON.stringify({ id: "malformed", n: 2 }),
          MessageAttributes: {
            switchyard: { DataType: "String", StringValue: "{not json" },
            "x-a": { DataType: "String", StringValue: "1" },
            count: { DataType: "Number", StringValue: "42" }
          }
        },
        { MessageBody: "<order>not json</order>" }
      ])
      const seen: Array<Subscriber.Delivery<typeof Order.Type>> = []
      yield* Subscriber.subscribe(topic, { group: "g", prefetch: 10 }).pipe(
        Stream.mapEffect((d) =>
          Effect.sync(() => seen.push(d)).pipe(
            Effect.andThen(() =>
              Result.isFailure(d.value) && seen.filter((s) => s.envelope.id === d.envelope.id).length === 1 ? d.nack() : d.ack
            )
          )
        ),
        Stream.take(4),
        Stream.timeout(Duration.seconds(30)),
        Stream.runDrain
      )
      const byBody = (n: number) => seen.find((d) => Result.isSuccess(d.value) && d.value.success.n === n)
      const plain = byBody(1)!
      assert.strictEqual(plain.envelope.id, ids[0])
      assert.strictEqual(plain.envelope.idSource, "broker")
      assert.strictEqual(plain.envelope.attempt, 1)
      assert.strictEqual(plain.envelope.contentType, "application/octet-stream")
      const malformed = byBody(2)!
      assert.strictEqual(malformed.envelope.id, ids[1])
      assert.strictEqual(malformed.envelope.headers["x-a"], "1")
      assert.strictEqual(malformed.envelope.headers["count"], "42")
      assert.strictEqual(malformed.envelope.headers["switchyard"], "{not json")
      const bad = seen.filter((d) => d.envelope.id === ids[2])
      assert.strictEqual(bad.length, 2, "the undecodable message was nacked and came back")
      assert.isTrue(Result.isFailure(bad[0]!.value))
      assert.deepStrictEqual(bad.map((d) => d.envelope.attempt), [1, 2])
    }))

  it.effect("a queue the raw SDK created under its own name (underscores) is that destination: Consumer.run handles its messages", () =>
    Effect.gen(function*() {
      const { raw } = yield* TestServer
      const name = `order_events_${Math.random().toString(36).slice(2, 10)}`
      const created = yield* Effect.promise(() => raw.send(new CreateQueueCommand({ QueueName: name })))
      yield* Effect.promise(() =>
        raw.send(new SendMessageBatchCommand({
          QueueUrl: created.QueueUrl,
          Entries: [1, 2, 3].map((n) => ({ Id: String(n), MessageBody: JSON.stringify({ id: `e-${n}`, n }) }))
        }))
      )
      const handled: Array<number> = []
      const fiber = yield* Consumer.run(Topic.make(name, Order), (order) => Effect.sync(() => handled.push(order.n)), {
        group: "billing"
      }).pipe(Effect.forkChild)
      yield* Effect.void.pipe(Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: () => handled.length >= 3 }), Effect.timeout("30 seconds"))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual([...handled].sort(), [1, 2, 3])
      const { url } = yield* (yield* SqsTopology.SqsTopology).queue(name)
      assert.strictEqual(url, created.QueueUrl, "the destination resolved to the raw SDK's queue")
    }))

  it.effect("a poison corpus from the raw SDK: the consumer survives, every valid order is handled, every invalid one is dead-lettered with a reason", () =>
    Effect.gen(function*() {
      const destination = unique("corpus")
      const corpus = PoisonCorpus.make({ count: 1_500, oversizedPayloadBytes: 200 * 1024 })
      const handled = new Map<string, number>()
      const fiber = yield* Consumer.run(
        PoisonCorpus.topic(destination),
        (order) => Effect.sync(() => handled.set(order.id, (handled.get(order.id) ?? 0) + 1)),
        { group: "g", idempotency: true, concurrency: 8, ordering: "none", prefetch: 100 }
      ).pipe(Effect.forkChild)
      // what a foreign producer can send: text bodies (binary ones base64 without a marker, an empty one as a space),
      // its headers as attributes (SQS refuses empty values), a malformed `switchyard` attribute on garbage entries
      const entries = corpus.map((entry): Omit<SendMessageBatchRequestEntry, "Id"> => {
        const body = entry.payload.length === 0 ? " " : bodyOf(entry.payload).body
        const attributes: Record<string, { DataType: string; StringValue: string }> = {}
        for (const [name, value] of Object.entries(entry.headers)) {
          if (value !== "") attributes[name] = { DataType: "String", StringValue: value }
        }
        if (entry.kind === "garbage-metadata" || entry.kind === "valid-garbage-metadata") {
          attributes["switchyard"] = { DataType: "String", StringValue: "{\"id\": 5, \"h\": [" }
        } else if (entry.messageId !== undefined) {
          attributes["switchyard"] = {
            DataType: "String",
            StringValue: JSON.stringify({ id: entry.messageId, ...(entry.contentType !== undefined ? { ct: entry.contentType } : {}) })
          }
        }
        return { MessageBody: body, MessageAttributes: attributes }
      })
      const messageIds = yield* sendRaw(destination, entries)
      const entryOf = new Map(messageIds.map((id, i) => [id, corpus[i]!]))
      const invalid = corpus.filter((e) => !e.valid)
      const dead = yield* take(`${destination}.dlq`, invalid.length)
      yield* sendRaw(destination, [{ MessageBody: JSON.stringify({ id: "final", n: 0 }) }])
      yield* Effect.gen(function*() {
        while (!handled.has("final")) yield* Effect.sleep("50 millis")
      }).pipe(Effect.timeout("30 seconds"))
      yield* Fiber.interrupt(fiber)
      const Coordinates = Schema.fromJsonString(Schema.Struct({ offset: Schema.String }))
      const deadEntries = dead.map((e) => entryOf.get(Schema.decodeUnknownSync(Coordinates)(e.headers[Headers.deadLetterOriginCoordinates]).offset))
      assert.strictEqual(deadEntries.filter((e) => e === undefined).length, 0)
      assert.deepStrictEqual(
        invalid.filter((e) => !deadEntries.includes(e)).map((e) => `${e.index}:${e.kind}`),
        [],
        "invalid entries not dead-lettered"
      )
      for (const e of dead) assert.isString(e.headers[Headers.deadLetterReason])
      const validIds = corpus.flatMap((e) => (e.orderId === undefined ? [] : [e.orderId]))
      assert.deepStrictEqual(validIds.filter((id) => !handled.has(id)), [], "valid orders not handled")
      console.log(`poison corpus on SQS (${corpus.length} entries):`, PoisonCorpus.countByKind(corpus))
    }), 180_000)

  it.effect("payloads round-trip byte for byte (binary, empty, CR LF, BOM); more than 10 headers survive; the body of binary is base64", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("bytes")
      const payloads = [
        Uint8Array.from({ length: 256 }, (_, i) => i),
        new Uint8Array(),
        encoder.encode("line\r\nnext\r"),
        Uint8Array.of(0xef, 0xbb, 0xbf, 0x41),
        encoder.encode("žluťoučký kůň 🐎"),
        Uint8Array.of(0x00, 0x01, 0x02)
      ]
      const headers = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`x-h${i}`, `v${i}`]))
      const sent = payloads.map((payload, i) => Envelope.outgoing(payload, { id: `bytes-${i}`, headers }))
      yield* broker.publish(destination, sent)
      const { raw } = yield* TestServer
      const info = yield* SqsTopology.SqsTopology.use((t) => t.queue(destination))
      const url = (yield* Effect.promise(() => raw.send(new GetQueueUrlCommand({ QueueName: info.queueName })))).QueueUrl
      const peek = yield* Effect.promise(() => raw.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 0, MessageAttributeNames: ["All"] })))
      assert.isTrue((peek.Messages ?? []).some((m) => m.Body === Buffer.from(payloads[0]!).toString("base64")), "binary travels base64")
      const got = yield* take(destination, sent.length)
      const byId = new Map(got.map((e) => [e.id, e]))
      for (const message of sent) {
        const envelope = byId.get(message.id)!
        assert.deepStrictEqual([...envelope.payload], [...message.payload], `payload of ${message.id}`)
        assert.deepStrictEqual(envelope.headers, headers)
      }
    }))

  it.effect("over 256 KiB is refused as TooLarge before sending; publishEach fails only that message", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("large")
      const big = Envelope.outgoing(encoder.encode("x".repeat(262_144)), { id: "big" })
      const small = (id: string) => Envelope.outgoing(encoder.encode(id), { id })
      const error = yield* Effect.flip(broker.publish(destination, [big]))
      assert.strictEqual(error.reason._tag, "TooLarge")
      const results = yield* broker.publishEach!(destination, [small("a"), big, small("b")])
      assert.deepStrictEqual(results.map((r) => Result.isSuccess(r)), [true, false, true])
      const got = yield* take(destination, 2)
      assert.deepStrictEqual(got.map((e) => e.id).sort(), ["a", "b"])
    }))
})
