/**
 * The consumer runtime cases on every broker: dead letters for undecodable messages, exhausted retries and
 * defects; graceful drain; idempotency. Registered by `Conformance.suite`.
 */
import { assert, type Vitest } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Schedule, Schema } from "effect"
import type { Broker } from "../../Broker.ts"
import * as Consumer from "../../Consumer.ts"
import * as H from "../../Headers.ts"
import type * as Publisher from "../../Publisher.ts"
import type * as Subscriber from "../../Subscriber.ts"
import * as Topic from "../../Topic.ts"
import { type Harness, Payload, encoder, makeMessage, payloadOf } from "./harness.ts"

/** Registers the consumer runtime cases. */
export const register = (it: Vitest.MethodsNonLive<Broker | Publisher.Publisher | Subscriber.Subscriber>, harness: Harness): void => {
  const { capabilities: caps, scale, fresh, publish, open, readUntil, readDeadLetters } = harness
  /**
   * Runs a consumer until `until` holds, then `whileRunning` (reading what it dead-lettered: on a broker that
   * does not keep order, the poison messages may be the last it takes), asserts it is still running, stops it.
   */
  const consumeWhile = Effect.fn("Conformance.consumeWhile")(function*<A, E, B, E2>(
    topic: Topic.Topic<A>,
    handler: Consumer.Handler<A, E, never>,
    options: Consumer.Options<E>,
    until: Effect.Effect<boolean>,
    whileRunning: Effect.Effect<B, E2, Broker>
  ) {
    const fiber = yield* Consumer.run(topic, handler, options).pipe(Effect.forkChild)
    yield* until.pipe(
      Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (done) => done }),
      Effect.timeout(Duration.seconds(30 * scale))
    )
    const result = yield* whileRunning
    const exit = fiber.pollUnsafe()
    assert.isUndefined(exit, "the consumer stopped by itself")
    yield* Fiber.interrupt(fiber)
    return result
  })
  const consumeUntil = <A, E>(
    topic: Topic.Topic<A>,
    handler: Consumer.Handler<A, E, never>,
    options: Consumer.Options<E>,
    until: Effect.Effect<boolean>
  ) => consumeWhile(topic, handler, options, until, Effect.void)

  if (!caps.atMostOnce) {
    it.effect("consumer: undecodable messages are dead-lettered with the reason; valid traffic is unaffected", () =>
      Effect.gen(function*() {
        const destination = yield* fresh("poison")
        const topic = Topic.make(destination, Payload)
        yield* Effect.scoped(open(`${destination}.dlq`, "dlq-reader"))
        const handled = new Set<number>()
        const good = Array.from({ length: 10 }, (_, n) => makeMessage(n, `k${n}`))
        const notJson = makeMessage(100, "bad", { payload: encoder.encode("{not json") })
        const wrongShape = makeMessage(101, "bad", { payload: encoder.encode(JSON.stringify({ n: "x" })) })
        const notUtf8 = makeMessage(102, "bad", { payload: new Uint8Array([0xff, 0xfe, 0xfd]) })
        yield* Effect.scoped(open(destination, "runtime"))
        yield* publish(destination, [...good.slice(0, 5), notJson, wrongShape, notUtf8, ...good.slice(5)])
        const dead = yield* consumeWhile(
          topic,
          (p) => Effect.sync(() => handled.add(p.n)),
          { group: "runtime" },
          Effect.sync(() => handled.size >= 10),
          readDeadLetters(destination, 3)
        )
        assert.deepStrictEqual([...handled].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        const byId = new Map(dead.received.map((e) => [e.headers[H.deadLetterOriginalId], e]))
        for (const [message, reason] of [[notJson, "JSON"], [wrongShape, `["n"]`], [notUtf8, "UTF-8"]] as const) {
          const envelope = byId.get(message.id)
          assert.isDefined(envelope, `poison message ${message.id} not in the dead-letter destination`)
          assert.strictEqual(envelope?.headers[H.deadLetterErrorTag], "DecodeError")
          assert.include(envelope?.headers[H.deadLetterReason] ?? "", reason)
          assert.strictEqual(envelope?.headers[H.deadLetterOriginDestination], destination)
          assert.deepStrictEqual(envelope?.payload, message.payload)
        }
      }))

    it.effect("consumer: exhausted retries and defects are dead-lettered with error tag and attempts; the consumer keeps running", () =>
      Effect.gen(function*() {
        const destination = yield* fresh("retries")
        const topic = Topic.make(destination, Payload)
        yield* Effect.scoped(open(`${destination}.dlq`, "dlq-reader"))
        yield* Effect.scoped(open(destination, "runtime"))
        class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { n: Schema.Number }) {}
        const calls = new Map<number, number>()
        const handled = new Set<number>()
        const sent = Array.from({ length: 12 }, (_, n) => makeMessage(n, `k${n}`))
        yield* publish(destination, sent)
        const dead = yield* consumeWhile<Payload, Flaky, Effect.Success<ReturnType<typeof readDeadLetters>>, unknown>(
          topic,
          ({ n }) =>
            Effect.gen(function*() {
              calls.set(n, (calls.get(n) ?? 0) + 1)
              if (n === 3) return yield* new Flaky({ n })
              if (n === 7) return yield* Effect.die(new Error("boom"))
              if (n === 9 && calls.get(n)! < 2) return yield* new Flaky({ n })
              handled.add(n)
            }),
          { group: "runtime", retry: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 2 })) },
          Effect.sync(() => handled.size >= 10),
          readDeadLetters(destination, 2)
        )
        assert.strictEqual(calls.get(3), 3, "retried twice, then gave up")
        assert.strictEqual(calls.get(7), 1, "defects are not retried")
        assert.isTrue(handled.has(9), "a transient failure recovered by retry")
        const byN = new Map(dead.received.map((e) => [payloadOf(e).n, e]))
        assert.strictEqual(byN.get(3)?.headers[H.deadLetterErrorTag], "Flaky")
        assert.strictEqual(byN.get(3)?.headers[H.deadLetterAttempts], "3")
        assert.strictEqual(byN.get(7)?.headers[H.deadLetterErrorTag], "Defect")
        assert.include(byN.get(7)?.headers[H.deadLetterReason] ?? "", "boom")
        assert.strictEqual(dead.ids.size, 2)
      }))

    it.effect("consumer: interruption drains in-flight handlers, acks them, and takes nothing new", () =>
      Effect.gen(function*() {
        const destination = yield* fresh("drain")
        const topic = Topic.make(destination, Payload)
        yield* Effect.scoped(open(destination, "runtime"))
        const sent = Array.from({ length: 20 }, (_, n) => makeMessage(n, `k${n}`))
        yield* publish(destination, sent)
        const started = new Set<number>()
        const finished = new Set<number>()
        const gate = yield* Deferred.make<void>()
        const fiber = yield* Consumer.run(
          topic,
          ({ n }) =>
            Effect.gen(function*() {
              started.add(n)
              if (started.size >= 4) yield* Deferred.succeed(gate, undefined)
              yield* Effect.sleep("400 millis")
              finished.add(n)
            }),
          { group: "runtime", concurrency: 4, ordering: "none", prefetch: 4, drainTimeout: "10 seconds" }
        ).pipe(Effect.forkChild)
        yield* Deferred.await(gate).pipe(Effect.timeout(Duration.seconds(20 * scale)))
        // What had started when shutdown began: taken before interrupting, so that a handler started
        // during the drain shows up as a difference.
        const inFlightAtStop = [...started].sort((a, b) => a - b)
        yield* Fiber.interrupt(fiber)
        assert.isAtLeast(inFlightAtStop.length, 4)
        assert.deepStrictEqual([...started].sort((a, b) => a - b), inFlightAtStop, "a handler started after shutdown began")
        for (const n of inFlightAtStop) assert.isTrue(finished.has(n), `in-flight handler ${n} did not finish`)
        assert.deepStrictEqual([...finished].sort((a, b) => a - b), inFlightAtStop, "a handler finished that never started")
        if (caps.persistent) {
          // What was drained was acked: the rest, and only the rest, comes back to the group.
          const next = yield* open(destination, "runtime")
          const { ids } = yield* readUntil(next.deliveries, sent.length - finished.size)
          const redone = sent.filter((m) => ids.has(m.id)).map((m) => payloadOf(m).n)
          for (const n of redone) assert.isFalse(finished.has(n), `message ${n} was handled but not acked`)
          assert.strictEqual(ids.size, sent.length - finished.size)
        }
      }))

    it.effect("consumer: idempotency skips a message id that was already processed", () =>
      Effect.gen(function*() {
        const destination = yield* fresh("idem")
        const topic = Topic.make(destination, Payload)
        yield* Effect.scoped(open(destination, "runtime"))
        const first = makeMessage(1, "k")
        const again = { ...first, payload: encoder.encode(JSON.stringify({ n: 2, key: "k" })) }
        const other = makeMessage(3, "k")
        yield* publish(destination, [first, again, other])
        const handled: Array<number> = []
        yield* consumeUntil(
          topic,
          ({ n }) => Effect.sync(() => handled.push(n)),
          { group: "runtime", idempotency: true },
          Effect.sync(() => handled.includes(3))
        )
        yield* Effect.sleep(Duration.millis(300 * scale))
        assert.deepStrictEqual(handled, [1, 3])
      }))
  }
}
