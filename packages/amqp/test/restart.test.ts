import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { Context, Effect, Fiber, Layer, Queue, Ref, Schedule, Stream } from "effect"
import { AmqpBroker, AmqpConnection, AmqpRpc } from "../src/index.ts"
import { RabbitNode } from "../src/testing/index.ts"
import { message, options, unique } from "./helpers.ts"

/**
 * Restarts a private RabbitMQ node (its own node name, ports and database, `RabbitNode`) twice while 10,000
 * messages flow from parallel publishers. Every confirmed message must be consumed, and the consumer must
 * resume by itself. The shared node the other tests use is never touched; the private one is stopped and
 * deleted with the test's scope.
 */
describe("broker restart", () => {
  it.live("survives two RabbitMQ restarts during 10,000 messages from parallel publishers", () =>
    Effect.gen(function*() {
      const node = yield* RabbitNode.start()
      const services = yield* Layer.build(
        AmqpBroker.layer({ ...options, hostname: node.hostname, port: node.port, connectionName: "restart-test" })
      )
      const broker = Context.get(services, Broker.Broker)
      const connection = Context.get(services, AmqpConnection.AmqpConnection)
      const destination = unique("restart")
      const publishers = 20
      const perPublisher = 500
      const total = publishers * perPublisher

      const consumed = new Set<string>()
      const sub = yield* broker.subscribe(destination, { group: "workers", prefetch: 200, startFrom: "earliest" })
      const consumer = yield* sub.deliveries.pipe(
        Stream.runForEach((d) =>
          Effect.sync(() => consumed.add(d.envelope.id)).pipe(Effect.andThen(Effect.ignore(d.ack)))
        ),
        Effect.forkScoped
      )

      const confirmed = yield* Ref.make(new Set<string>())
      const publishFailures = yield* Ref.make(0)
      const publisher = (p: number) =>
        Effect.forEach(
          Array.from({ length: perPublisher / 25 }, (_, b) => b),
          (b) => {
            const batch = Array.from({ length: 25 }, (_, i) => message(`p${p}-${b * 25 + i}`, `payload ${p} ${b} ${i}`))
            return broker.publish(destination, batch).pipe(
              Effect.tapError(() => Ref.update(publishFailures, (n) => n + 1)),
              Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: 400 }))),
              Effect.andThen(Ref.update(confirmed, (s) => {
                for (const m of batch) s.add(m.id)
                return s
              })),
              Effect.andThen(Effect.sleep("300 millis"))
            )
          },
          { discard: true }
        )
      const publishing = yield* Effect.forEach(Array.from({ length: publishers }, (_, p) => p), publisher, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.forkChild)

      const generationBefore = (yield* connection.current).generation
      for (let round = 0; round < 2; round++) {
        yield* Effect.sleep("1500 millis")
        // Each restart starts only once the connection is back from the previous one: on a loaded machine a
        // reconnect can take longer than the pause, and two outages would then be seen as one.
        const generation = (yield* connection.current).generation
        yield* node.stop
        yield* Effect.sleep("1 second")
        yield* node.start
        yield* connection.current.pipe(
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (current) => current.generation > generation }),
          Effect.timeout("60 seconds")
        )
      }
      yield* Fiber.join(publishing).pipe(Effect.timeout("120 seconds"))
      const confirmedIds = yield* Ref.get(confirmed)
      assert.strictEqual(confirmedIds.size, total)

      // every confirmed message is consumed (duplicates allowed: at-least-once)
      yield* Effect.gen(function*() {
        while (true) {
          let missing = 0
          for (const id of confirmedIds) if (!consumed.has(id)) missing++
          if (missing === 0) return
          yield* Effect.sleep("200 millis")
        }
      }).pipe(Effect.timeout("60 seconds"))
      const generationAfter = (yield* connection.current).generation
      assert.isAtLeast(generationAfter - generationBefore, 2, "the connection was re-established twice")
      assert.isUndefined(consumer.pollUnsafe(), "the consumer is still running")
      yield* Effect.logInfo(`restart test: ${consumed.size} consumed, ${yield* Ref.get(publishFailures)} publish retries`)
    }), { timeout: 240_000 })

  it.live("after a connection drop, a stale delivery's ack is an AckError and the message comes back on the new channel", () =>
    Effect.gen(function*() {
      const node = yield* RabbitNode.start()
      const services = yield* Layer.build(
        AmqpBroker.layer({ ...options, hostname: node.hostname, port: node.port, connectionName: "stale-ack-test" })
      )
      const broker = Context.get(services, Broker.Broker)
      const connection = Context.get(services, AmqpConnection.AmqpConnection)
      const destination = unique("stale")
      const sub = yield* broker.subscribe(destination, { group: "g", prefetch: 10, startFrom: "earliest" })
      const received = yield* Queue.unbounded<Broker.RawDelivery>()
      yield* sub.deliveries.pipe(Stream.runForEach((d) => Queue.offer(received, d)), Effect.forkScoped)
      yield* broker.publish(destination, [message("s-1", "x")])
      const first = yield* Queue.take(received).pipe(Effect.timeout("10 seconds"))
      const generation = (yield* connection.current).generation
      yield* node.rabbitmqctl("close_all_connections", "switchyard test: forced drop")
      const again = yield* Queue.take(received).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(again.envelope.id, "s-1")
      assert.isAtLeast(again.envelope.attempt, 2)
      assert.isAbove((yield* connection.current).generation, generation)
      const stale = yield* Effect.flip(first.ack)
      assert.strictEqual(stale._tag, "AckError")
      yield* again.ack
      // the new channel is healthy: the next message arrives and is acked, nothing else comes back
      yield* broker.publish(destination, [message("s-2", "y")])
      const next = yield* Queue.take(received).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(next.envelope.id, "s-2")
      yield* next.ack
      yield* Effect.sleep("500 millis")
      assert.strictEqual(yield* Queue.size(received), 0)
    }), { timeout: 60_000 })

  it.live("AmqpRpc.serve answers again after a connection drop (the responder re-attaches by itself)", () =>
    Effect.gen(function*() {
      const node = yield* RabbitNode.start()
      const services = yield* Layer.build(
        AmqpBroker.layer({ ...options, hostname: node.hostname, port: node.port, connectionName: "rpc-reattach-test" })
      )
      const rpc = Context.get(services, AmqpRpc.AmqpRpc)
      const connection = Context.get(services, AmqpConnection.AmqpConnection)
      const destination = unique("rpc-reattach")
      const served = yield* Ref.make(0)
      const decode = (payload: Uint8Array) => new TextDecoder().decode(payload)
      yield* rpc.serve(destination, (req) =>
        Effect.as(Ref.update(served, (n) => n + 1), new TextEncoder().encode(`echo:${decode(req.payload)}`)))
      const ask = (text: string) => rpc.request(destination, { payload: new TextEncoder().encode(text), timeout: "2 seconds" })
      assert.strictEqual(decode((yield* ask("before")).payload), "echo:before")
      const generation = (yield* connection.current).generation
      yield* node.rabbitmqctl("close_all_connections", "switchyard test: forced drop")
      yield* connection.current.pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (current) => current.generation > generation }),
        Effect.timeout("30 seconds")
      )
      // the same serve answers once its channel is back; nobody re-runs it (no responder: NoResponders, retried)
      const after = yield* ask("after").pipe(
        Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: 80 }))),
        Effect.timeout("30 seconds")
      )
      assert.strictEqual(decode(after.payload), "echo:after")
      const replies = yield* Effect.forEach(["a", "b", "c"], ask, { concurrency: "unbounded" })
      assert.deepStrictEqual(replies.map((r) => decode(r.payload)), ["echo:a", "echo:b", "echo:c"])
      assert.isAtLeast(yield* Ref.get(served), 5)
    }), { timeout: 90_000 })
})
