import { assert, describe, layer } from "@effect/vitest"
import * as amqp from "amqplib"
import { Broker, Consumer, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Effect, Exit, Fiber, Queue, Schedule, Schema, Scope, Stream } from "effect"
import { AmqpBroker, AmqpTopology } from "../src/index.ts"
import { BrokerLive, collect, drainQueue, message, options, takeN, text, unique } from "./helpers.ts"

layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("AmqpBroker contract", (it) => {
  it.effect("round-trips the whole envelope", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("roundtrip")
      const received = yield* collect(destination, "g")
      const sent = [
        message("id-1", "hello", {
          key: "customer-7",
          headers: { "x-tenant": "acme", traceparent: "00-abc-def-01" },
          timestamp: 1_700_000_000_123,
          contentType: "application/json",
          correlationId: "corr-1",
          causationId: "cause-1"
        }),
        message("id-2", "world")
      ]
      const receipts = yield* broker.publish(destination, sent)
      assert.deepStrictEqual(receipts.map((r) => r.id), ["id-1", "id-2"])
      const got = yield* takeN(received, 2)
      const [a, b] = got.map((d) => d.envelope)
      assert.strictEqual(a!.id, "id-1")
      assert.strictEqual(a!.key, "customer-7")
      assert.deepStrictEqual(a!.headers, { "x-tenant": "acme", traceparent: "00-abc-def-01" })
      assert.strictEqual(a!.timestamp, 1_700_000_000_123)
      assert.strictEqual(a!.contentType, "application/json")
      assert.strictEqual(a!.correlationId, "corr-1")
      assert.strictEqual(a!.causationId, "cause-1")
      assert.strictEqual(text(a!), "hello")
      assert.strictEqual(a!.attempt, 1)
      assert.strictEqual(a!.coordinates.destination, destination)
      assert.isNumber(a!.coordinates.deliveryTag)
      assert.strictEqual(b!.id, "id-2")
      assert.strictEqual(b!.key, undefined)
      assert.strictEqual(b!.correlationId, undefined)
      assert.strictEqual(b!.causationId, undefined)
      assert.deepStrictEqual(b!.headers, {})
      assert.deepStrictEqual(Array.from(b!.payload), Array.from(sent[1]!.payload))
    }))

  it.effect("publishes a large batch with pipelined confirms, in order", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("batch")
      const received = yield* collect(destination, "g", { prefetch: 500 })
      const n = 5000
      const messages = Array.from({ length: n }, (_, i) => message(`m-${i}`, `payload-${i}`))
      const receipts = yield* broker.publish(destination, messages)
      assert.strictEqual(receipts.length, n)
      const got = yield* takeN(received, n)
      assert.deepStrictEqual(got.map((d) => d.envelope.id), messages.map((m) => m.id))
    }))

  it.effect("publish tells each confirm to onConfirmed as it arrives: every index once, with its receipt, before the call resolves", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("confirms")
      yield* collect(destination, "g", { prefetch: 500 })
      const messages = Array.from({ length: 2000 }, (_, i) => message(`c-${i}`, `payload-${i}`))
      const told: Array<readonly [number, string]> = []
      const receipts = yield* broker.publish(destination, messages, (index, receipt) => void told.push([index, receipt.id]))
      assert.strictEqual(told.length, messages.length, "one confirm per message, all before the call resolved")
      assert.deepStrictEqual([...told].sort(([a], [b]) => a - b), messages.map((m, i) => [i, m.id] as const))
      assert.deepStrictEqual(receipts.map((r) => r.id), messages.map((m) => m.id))
    }))

  it.effect("consumer groups: members compete, groups each get everything", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("groups")
      const a1 = yield* collect(destination, "a", { prefetch: 10 })
      const a2 = yield* collect(destination, "a", { prefetch: 10 })
      const b = yield* collect(destination, "b")
      const n = 400
      yield* broker.publish(destination, Array.from({ length: n }, (_, i) => message(`m-${i}`, `${i}`)))
      const allB = yield* takeN(b, n)
      assert.strictEqual(new Set(allB.map((d) => d.envelope.id)).size, n)
      // group a: the two members share the work, nobody gets a message twice
      const ids = new Set<string>()
      let fromA1 = 0
      let fromA2 = 0
      while (ids.size < n) {
        const d = yield* Effect.raceFirst(
          Queue.take(a1).pipe(Effect.map((d) => [1, d] as const)),
          Queue.take(a2).pipe(Effect.map((d) => [2, d] as const))
        ).pipe(Effect.timeout("20 seconds"))
        if (d[0] === 1) fromA1++
        else fromA2++
        assert.isFalse(ids.has(d[1].envelope.id), "duplicate delivery within a group")
        ids.add(d[1].envelope.id)
      }
      assert.isAbove(fromA1, 0)
      assert.isAbove(fromA2, 0)
      assert.strictEqual(fromA1 + fromA2, n)
    }))

  it.effect("prefetch bounds unacknowledged deliveries", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("prefetch")
      const held = yield* collect(destination, "g", { prefetch: 5, ack: false })
      yield* broker.publish(destination, Array.from({ length: 20 }, (_, i) => message(`m-${i}`, `${i}`)))
      const first = yield* takeN(held, 5)
      yield* Effect.sleep("400 millis")
      assert.strictEqual(yield* Queue.size(held), 0)
      yield* Effect.forEach(first, (d) => d.ack)
      const next = yield* takeN(held, 5)
      assert.deepStrictEqual(next.map((d) => d.envelope.id), ["m-5", "m-6", "m-7", "m-8", "m-9"])
    }))

  it.effect("nack redelivers with a growing attempt; ack and nack are idempotent", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("nack")
      const q = yield* collect(destination, "g", { ack: false })
      yield* broker.publish(destination, [message("n-1", "x")])
      const [d1] = yield* takeN(q, 1)
      assert.strictEqual(d1!.envelope.attempt, 1)
      yield* d1!.nack()
      yield* d1!.nack() // no-op
      yield* d1!.ack // no-op: first settlement wins
      const [d2] = yield* takeN(q, 1)
      assert.strictEqual(d2!.envelope.id, "n-1")
      assert.strictEqual(d2!.envelope.attempt, 2)
      yield* d2!.nack()
      const [d3] = yield* takeN(q, 1)
      assert.strictEqual(d3!.envelope.attempt, 3)
      yield* d3!.ack
      yield* d3!.ack
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(q), 0)
    }))

  it.effect("coalesced acks settle only what the consumer acked: a nack in the middle and one in flight come back", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("multiack")
      const scope = yield* Scope.make()
      const q = yield* collect(destination, "g", { ack: false, prefetch: 50 }).pipe(Scope.provide(scope))
      const n = 40
      yield* broker.publish(destination, Array.from({ length: n }, (_, i) => message(`m-${i}`, `${i}`)))
      const first = yield* takeN(q, n)
      assert.deepStrictEqual(first.map((d) => d.envelope.id), Array.from({ length: n }, (_, i) => `m-${i}`))
      // in one turn: ack all but m-7 (nacked) and m-20 (left in flight), out of order
      const inFlight = first[20]!
      yield* first[7]!.nack()
      yield* Effect.forEach([...first].reverse(), (d) => d === first[7] || d === inFlight ? Effect.void : d.ack, { discard: true })
      const [back] = yield* takeN(q, 1)
      assert.strictEqual(back!.envelope.id, "m-7")
      assert.strictEqual(back!.envelope.attempt, 2)
      yield* back!.ack
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(q), 0, "nothing else came back")
      // closing the subscription returns the delivery still in flight (never covered by a multiple ack), only it
      yield* Scope.close(scope, Exit.void)
      const next = yield* collect(destination, "g", { ack: false })
      const [again] = yield* takeN(next, 1)
      assert.strictEqual(again!.envelope.id, "m-20")
      assert.isAtLeast(again!.envelope.attempt, 2)
      yield* again!.ack
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(next), 0, "every other message stayed acked")
    }))

  it.effect("nack with delay redelivers after the delay through a TTL retry queue", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("delay")
      const q = yield* collect(destination, "g", { ack: false })
      yield* broker.publish(destination, [message("d-1", "x", { headers: { h: "v" }, key: "k" })])
      const [d1] = yield* takeN(q, 1)
      const start = Date.now()
      yield* d1!.nack({ delay: "700 millis" })
      const [d2] = yield* takeN(q, 1)
      const waited = Date.now() - start
      assert.isAtLeast(waited, 600)
      assert.strictEqual(d2!.envelope.id, "d-1")
      assert.strictEqual(d2!.envelope.key, "k")
      assert.deepStrictEqual(d2!.envelope.headers, { h: "v" })
      assert.strictEqual(d2!.envelope.attempt, 2)
      yield* d2!.nack({ delay: "200 millis" })
      const [d3] = yield* takeN(q, 1)
      assert.strictEqual(d3!.envelope.attempt, 3)
      yield* d3!.ack
    }))

  it.effect("nack with delay falls back to an immediate requeue when the retry queue can't be provisioned", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("delay-fallback")
      const retry = AmqpTopology.retryQueue(AmqpTopology.groupQueueName(destination, "g"), 300)
      // a queue of the retry queue's name with other arguments: declaring the retry queue fails (406)
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const conn = await amqp.connect(`amqp://guest:guest@${options.hostname}:${options.port}`)
          const ch = await conn.createChannel()
          await ch.assertQueue(retry.name, { durable: true, arguments: { "x-message-ttl": 999_999 } })
          return { conn, ch }
        }),
        ({ ch, conn }) => Effect.promise(() => ch.deleteQueue(retry.name).then(() => conn.close()).catch(() => {}))
      )
      // prefetch 1: a delivery left unsettled would block the subscription
      const q = yield* collect(destination, "g", { ack: false, prefetch: 1 })
      yield* broker.publish(destination, [message("f-1", "x")])
      const [d1] = yield* takeN(q, 1)
      assert.strictEqual(d1!.envelope.attempt, 1)
      const start = Date.now()
      const exit = yield* Effect.exit(d1!.nack({ delay: "300 millis" }))
      assert.isTrue(Exit.isSuccess(exit), `nack({ delay }) failed: ${String(exit)}`)
      const [d2] = yield* takeN(q, 1, "5 seconds")
      assert.isBelow(Date.now() - start, 3000)
      assert.strictEqual(d2!.envelope.id, "f-1")
      assert.strictEqual(d2!.envelope.attempt, 2)
      yield* d2!.ack
      // nothing went to the retry queue
      yield* Effect.sleep("500 millis")
      assert.strictEqual(yield* Queue.size(q), 0)
    }))

  it.effect("closing the subscription cancels it; unacked deliveries go to the next member; stale acks are AckErrors", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("close")
      const scope = yield* Scope.make()
      const held = yield* collect(destination, "g", { ack: false }).pipe(Scope.provide(scope))
      yield* broker.publish(destination, [message("c-1", "x"), message("c-2", "y")])
      const got = yield* takeN(held, 2)
      yield* Scope.close(scope, Exit.void)
      const stale = yield* Effect.flip(got[0]!.ack)
      assert.strictEqual(stale._tag, "AckError")
      const next = yield* collect(destination, "g")
      const again = yield* takeN(next, 2)
      assert.deepStrictEqual(again.map((d) => d.envelope.id).sort(), ["c-1", "c-2"])
      assert.isTrue(again.every((d) => d.envelope.attempt >= 2))
    }))

  it.effect("the deliveries stream ends when the subscription scope closes", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("end")
      const scope = yield* Scope.make()
      const sub = yield* broker.subscribe(destination, { group: "g", prefetch: 10, startFrom: "earliest" }).pipe(
        Scope.provide(scope)
      )
      yield* broker.publish(destination, [message("e-1", "x")])
      const fiber = yield* sub.deliveries.pipe(Stream.tap((d) => d.ack), Stream.runCollect, Effect.forkChild)
      yield* Effect.sleep("300 millis")
      yield* Scope.close(scope, Exit.void)
      const all = yield* Fiber.join(fiber).pipe(Effect.timeout("5 seconds"))
      assert.deepStrictEqual(all.map((d) => d.envelope.id), ["e-1"])
    }))

  it.effect("by default a message no queue is bound for is confirmed (and logged), not a PublishError", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("unroutable-default")
      const receipts = yield* broker.publish(destination, [message("u-0", "x")])
      assert.deepStrictEqual(receipts.map((r) => r.id), ["u-0"])
      // RabbitMQ kept nothing: a group created afterwards gets only what is published afterwards
      const q = yield* collect(destination, "g")
      yield* broker.publish(destination, [message("u-1", "y")])
      const [d] = yield* takeN(q, 1)
      assert.strictEqual(d!.envelope.id, "u-1")
    }))

  it.effect("a .dlq destination keeps dead letters in a parking queue even with no subscriber", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = `${unique("parking")}.dlq`
      const receipts = yield* broker.publish(destination, [message("p-1", "dead")])
      assert.strictEqual(receipts.length, 1)
    }))

  it.effect("a publish effect run again publishes again (its confirmations are per run)", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("rerun")
      const q = yield* collect(destination, "g")
      const once = broker.publish(destination, [message("again", "x")])
      yield* once
      yield* once
      const got = yield* takeN(q, 2, "10 seconds")
      assert.deepStrictEqual(got.map((d) => d.envelope.id), ["again", "again"])
    }))

  it.effect("capabilities and system name", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      assert.strictEqual(broker.system, "rabbitmq")
      assert.deepStrictEqual(broker.capabilities, AmqpBroker.capabilities)
    }))
})

describe("AmqpBroker", () => {
  layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("many publishers", (it) => {
    it.effect("parallel publishers on one connection lose nothing", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("parallel")
        const q = yield* collect(destination, "g", { prefetch: 1000 })
        const publishers = 20
        const perPublisher = 100
        yield* Effect.forEach(
          Array.from({ length: publishers }, (_, p) => p),
          (p) =>
            Effect.forEach(
              Array.from({ length: perPublisher / 10 }, (_, b) => b),
              (b) =>
                broker.publish(
                  destination,
                  Array.from({ length: 10 }, (_, i) => message(`p${p}-${b * 10 + i}`, "x"))
                ),
              { discard: true }
            ),
          { concurrency: "unbounded", discard: true }
        )
        const got = yield* takeN(q, publishers * perPublisher)
        assert.strictEqual(new Set(got.map((d) => d.envelope.id)).size, publishers * perPublisher)
      }))
  })
})

layer(AmqpBroker.layer({ ...options, queueType: "quorum" }), { excludeTestServices: true, timeout: "30 seconds" })(
  "quorum group queues",
  (it) => {
    it.effect("attempt follows the broker's x-delivery-count, across subscribers", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("quorum")
        const first = yield* Scope.make()
        const q1 = yield* collect(destination, "g", { ack: false }).pipe(Scope.provide(first))
        yield* broker.publish(destination, [message("q-1", "x")])
        const [d1] = yield* takeN(q1, 1)
        assert.strictEqual(d1!.envelope.attempt, 1)
        yield* d1!.nack()
        const [d2] = yield* takeN(q1, 1)
        assert.strictEqual(d2!.envelope.attempt, 2)
        // the member goes away without settling: the next member sees the third attempt
        yield* Scope.close(first, Exit.void)
        const q2 = yield* collect(destination, "g", { ack: false })
        const [d3] = yield* takeN(q2, 1)
        assert.strictEqual(d3!.envelope.id, "q-1")
        assert.strictEqual(d3!.envelope.attempt, 3)
        yield* d3!.ack
      }))
  }
)

layer(AmqpBroker.layer({ ...options, unroutable: "fail" }), { excludeTestServices: true, timeout: "30 seconds" })(
  "unroutable: \"fail\"",
  (it) => {
    it.effect("an unroutable message is a non-retryable PublishError of kind Unroutable (mandatory + basic.return)", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("unroutable")
        const error = yield* Effect.flip(broker.publish(destination, [message("u-1", "x")]))
        assert.strictEqual(error._tag, "PublishError")
        assert.include(error.reason.message, "unroutable")
        assert.strictEqual(error.kind, "Unroutable")
        assert.isFalse(error.isRetryable)
        // once a group exists the same destination is routable
        const q = yield* collect(destination, "g")
        yield* broker.publish(destination, [message("u-2", "y")])
        const [d] = yield* takeN(q, 1)
        assert.strictEqual(d!.envelope.id, "u-2")
      }))

    it.effect("a long id is matched to its basic.return through its bounded message_id", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const error = yield* Effect.flip(broker.publish(unique("unroutable-long"), [message("r".repeat(300), "x")]))
        assert.strictEqual(error.kind, "Unroutable")
      }), 10_000)
  }
)

// The README example: publish first, then consume from the earliest position.
const Order = Schema.Struct({ orderId: Schema.String, email: Schema.String, total: Schema.Number })
const readmeFlow = (orders: Topic.Topic<typeof Order.Type>) =>
  Effect.gen(function*() {
    const handled: Array<string> = []
    yield* Publisher.publish(orders, { orderId: "o-1", email: "ada@example.com", total: 42 })
    const consumer = yield* Consumer.run(orders, (o) => Effect.sync(() => handled.push(o.orderId)), {
      group: "email",
      idempotency: true
    }).pipe(Effect.forkChild)
    // the consumer's queue exists once a publish after it is routed to it
    yield* Publisher.publish(orders, { orderId: "o-2", email: "bob@example.com", total: 7 }).pipe(
      Effect.repeat({ until: () => handled.includes("o-2"), schedule: Schedule.spaced("200 millis") })
    )
    yield* Fiber.interrupt(consumer)
    return handled
  })

const readmeDestination = unique("readme")
describe("the README example on RabbitMQ", () => {
  layer(Switchyard.on(BrokerLive), { excludeTestServices: true, timeout: "30 seconds" })("with no topology", (it) => {
    it.effect("the publish before any consumer succeeds; RabbitMQ keeps it for no group, so only later messages are handled", () =>
      Effect.gen(function*() {
        const handled = yield* readmeFlow(Topic.make(unique("readme-bare"), Order, { key: (o) => o.orderId }))
        assert.strictEqual(handled[0], "o-2")
        assert.notInclude(handled, "o-1")
      }), 20_000)
  })
  layer(
    Switchyard.on(AmqpBroker.layer({ ...options, topology: AmqpTopology.consumerGroup(readmeDestination, "email") })),
    { excludeTestServices: true, timeout: "30 seconds" }
  )("with the group declared in the topology", (it) => {
    it.effect("the message published before the consumer started is handled", () =>
      Effect.gen(function*() {
        const handled = yield* readmeFlow(Topic.make(readmeDestination, Order, { key: (o) => o.orderId }))
        assert.strictEqual(handled[0], "o-1")
        assert.include(handled, "o-2")
      }), 20_000)
  })
})

layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("first publishes", (it) => {
  it.effect("2,500 concurrent first publishes to new destinations share one declaration each (no channel exhaustion)", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destinations = Array.from({ length: 5 }, (_, i) => `${unique("burst")}.${i}.dlq`)
      const results = yield* Effect.forEach(
        Array.from({ length: 2500 }, (_, i) => i),
        (i) => Effect.result(broker.publish(destinations[i % destinations.length]!, [message(`b-${i}`, "x")])),
        { concurrency: "unbounded" }
      )
      const failures = results.filter((r) => r._tag === "Failure")
      assert.strictEqual(failures.length, 0, failures.slice(0, 3).map((f) => String(f)).join("; "))
      // every message is in its destination's parking queue
      const counts = yield* Effect.forEach(destinations, (d) => drainQueue(d).pipe(Effect.map((m) => m.length)))
      assert.deepStrictEqual(counts, destinations.map(() => 500))
    }), 30_000)
})
