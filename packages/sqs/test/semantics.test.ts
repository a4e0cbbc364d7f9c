/**
 * SQS semantics against ElasticMQ through `Consumer.run`: the visibility of a message held by a slow handler is
 * extended (a handler 3× slower than the visibility timeout runs once); FIFO queues keep per-key order under
 * concurrency 8; the redrive policy's `maxReceiveCount` becomes the delivery limit, so the last receive is
 * parked in the dead-letter destination with a reason.
 */
import { assert, layer } from "@effect/vitest"
import { Broker, Consumer, Envelope, Headers, Switchyard, Topic } from "@switchyard/core"
import { Duration, Effect, Fiber, Schema, Stream } from "effect"
import { brokerOn } from "./helpers.ts"

const Item = Schema.Struct({ key: Schema.String, n: Schema.Number })
const encoder = new TextEncoder()
const item = (key: string, n: number, id = `${key}-${n}`) =>
  Envelope.outgoing(encoder.encode(JSON.stringify({ key, n })), { id, key, contentType: "application/json" })

const slow = "sy-slow"
const fifo = "sy-order.fifo"
const limited = "sy-limited"

const waitFor = (condition: () => boolean, timeout: Duration.Input) =>
  Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep("50 millis")
  }).pipe(Effect.timeout(timeout))

const brokerLayer = brokerOn({
  queues: {
    [slow]: { visibilityTimeout: "2 seconds" },
    [fifo]: { visibilityTimeout: "20 seconds" },
    [limited]: { visibilityTimeout: "2 seconds", maxReceiveCount: 3 }
  }
})

layer(Switchyard.on(brokerLayer), { excludeTestServices: true, timeout: Duration.minutes(2) })("sqs: semantics", (it) => {
  it.effect("a handler 3x slower than the visibility timeout keeps its message: each message runs once", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const runs = new Map<number, number>()
      const topic = Topic.make(slow, Item)
      yield* broker.publish(slow, [0, 1, 2, 3].map((n) => item("k", n)))
      const fiber = yield* Consumer.run(topic, ({ n }) =>
        Effect.sync(() => runs.set(n, (runs.get(n) ?? 0) + 1)).pipe(Effect.andThen(Effect.sleep("6 seconds"))), {
        group: "slow",
        concurrency: 4,
        ordering: "none",
        handlerTimeout: "30 seconds"
      }).pipe(Effect.forkChild)
      yield* waitFor(() => runs.size === 4, "20 seconds")
      yield* Effect.sleep("8 seconds")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual([...runs.entries()].sort(([a], [b]) => a - b), [[0, 1], [1, 1], [2, 1], [3, 1]])
    }), 60_000)

  it.effect("a FIFO queue keeps per-key order under concurrency 8, across keys in parallel", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const keys = Array.from({ length: 16 }, (_, i) => `key-${i}`)
      const sent = Array.from({ length: 800 }, (_, n) => item(keys[n % keys.length]!, n))
      for (let i = 0; i < sent.length; i += 100) yield* broker.publish(fifo, sent.slice(i, i + 100))
      const seen = new Map<string, Array<number>>()
      let inFlight = 0
      let maxInFlight = 0
      const fiber = yield* Consumer.run(Topic.make(fifo, Item, { key: (i) => i.key }), ({ key, n }) =>
        Effect.gen(function*() {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          yield* Effect.sleep("2 millis")
          seen.set(key, [...(seen.get(key) ?? []), n])
          inFlight--
        }), { group: "fifo", concurrency: 8, ordering: "key", prefetch: 100 }).pipe(Effect.forkChild)
      yield* waitFor(() => [...seen.values()].reduce((s, a) => s + a.length, 0) >= sent.length, "60 seconds")
      yield* Fiber.interrupt(fiber)
      for (const key of keys) {
        const ns = seen.get(key) ?? []
        assert.deepStrictEqual(ns, [...ns].sort((a, b) => a - b), `order of ${key}`)
        assert.strictEqual(ns.length, sent.length / keys.length, `count of ${key}`)
      }
      assert.isAbove(maxInFlight, 1, "keys were handled in parallel")
    }), 90_000)

  it.effect("maxReceiveCount 3 is the delivery limit: the last receive is parked by the Consumer with a reason instead of handled", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish(limited, [item("k", 1, "stuck")])
      // Two receives that never succeed: the first is nacked (a failing handler); the second is left unsettled
      // until this subscription closes (a member that stopped), after which SQS shows it again when its
      // visibility lapses. Holding it keeps this member's only permit, so no long poll of its own is in flight
      // when it closes. A poll in flight there could take the third receive and give it back (a given-back receive
      // counts too): ElasticMQ would then move the message to the dead-letter queue itself at the fourth, without
      // a reason. A second nack with a delay did not rule that out under load.
      const attempts = yield* Effect.scoped(Effect.gen(function*() {
        const sub = yield* broker.subscribe(limited, { group: "limited", prefetch: 1, startFrom: "earliest" })
        return yield* sub.deliveries.pipe(
          Stream.mapEffect((d) =>
            Effect.as(d.envelope.attempt === 1 ? d.nack() : Effect.void, [d.envelope.attempt, d.deliveryLimit] as const)
          ),
          Stream.take(2),
          Stream.timeout(Duration.seconds(30)),
          Stream.runCollect
        )
      }))
      assert.deepStrictEqual(attempts, [[1, 2], [2, 2]])
      const handled: Array<number> = []
      const fiber = yield* Consumer.run(Topic.make(limited, Item), ({ n }) => Effect.sync(() => handled.push(n)), {
        group: "limited"
      }).pipe(Effect.forkChild)
      const dlq = yield* broker.subscribe(`${limited}.dlq`, { group: "dlq", prefetch: 5, startFrom: "earliest" })
      const dead = yield* dlq.deliveries.pipe(Stream.take(1), Stream.timeout(Duration.seconds(30)), Stream.runCollect)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(handled, [], "the last receive is not handled")
      assert.strictEqual(dead.length, 1)
      const letter = dead[0]!.envelope
      assert.strictEqual(letter.headers[Headers.deadLetterOriginalId], "stuck")
      assert.strictEqual(letter.headers[Headers.deadLetterErrorTag], "DeliveryLimitExceeded")
      assert.isString(letter.headers[Headers.deadLetterReason])
    }), 90_000)
})
