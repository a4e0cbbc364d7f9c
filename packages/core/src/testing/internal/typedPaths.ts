/**
 * Conformance cases for the typed paths users call (`Subscriber`, `Consumer.run`) on the broker's own
 * deliveries, and for the consumer's failure paths: a handler that throws, a dead letter that cannot be
 * published or that the broker refuses as too large, messages without an id, one id dead-lettered once.
 * Registered by `Conformance.suite`.
 */
import { assert, type Vitest } from "@effect/vitest"
import { Duration, Effect, Fiber, Result, Schedule, Schema, Stream } from "effect"
import type { Scope } from "effect"
import type { BrokerShape, Subscription } from "../../Broker.ts"
import { Broker } from "../../Broker.ts"
import type { Capabilities } from "../../Capabilities.ts"
import * as Consumer from "../../Consumer.ts"
import { type Envelope, type OutgoingMessage, outgoing, type PublishReceipt } from "../../Envelope.ts"
import { PublishError, reason, type SubscribeError } from "../../Errors.ts"
import * as H from "../../Headers.ts"
import type { Publisher } from "../../Publisher.ts"
import * as Subscriber from "../../Subscriber.ts"
import * as Topic from "../../Topic.ts"

/** What the suite shares with these cases. */
export interface Harness {
  readonly capabilities: Capabilities
  readonly scale: number
  readonly idle: Duration.Duration
  readonly fresh: (label: string) => Effect.Effect<string, never, Broker>
  readonly publish: (
    destination: string,
    messages: ReadonlyArray<OutgoingMessage>
  ) => Effect.Effect<ReadonlyArray<PublishReceipt>, PublishError, Broker>
  readonly open: (destination: string, group: string) => Effect.Effect<Subscription, SubscribeError, Broker | Scope.Scope>
  readonly readDeadLetters: (
    destination: string,
    expected: number
  ) => Effect.Effect<{ readonly received: ReadonlyArray<Envelope> }, unknown, Broker>
}

const Payload = Schema.Struct({ n: Schema.Number, key: Schema.String })
type Payload = typeof Payload.Type

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { n: Schema.Number }) {}

const encoder = new TextEncoder()

const message = (n: number, key: string, fields?: Partial<OutgoingMessage>): OutgoingMessage =>
  outgoing(fields?.payload ?? encoder.encode(JSON.stringify({ n, key })), {
    id: `m-${n}-${Math.random().toString(36).slice(2, 10)}`,
    key,
    contentType: "application/json",
    ...fields
  })

/** The broker with its publishes to `destination` replaced (fault injection for one consumer). */
const publishingTo = (
  destination: string,
  publish: (broker: BrokerShape, messages: ReadonlyArray<OutgoingMessage>) => Effect.Effect<ReadonlyArray<PublishReceipt>, PublishError>
) =>
(broker: BrokerShape): BrokerShape => ({
  ...broker,
  publish: (to, messages) => to === destination ? publish(broker, messages) : broker.publish(to, messages)
})

/**
 * Registers the cases.
 */
export const register = (
  it: Vitest.MethodsNonLive<Broker | Publisher | Subscriber.Subscriber>,
  harness: Harness
): void => {
  const { capabilities: caps, fresh, publish } = harness

  /**
   * Runs a consumer until `until` holds, then `whileRunning` (reading what it dead-lettered: on a broker that
   * does not keep order, the poison message may be the last it takes), asserts it is still running, stops it.
   */
  const consumeWhile = Effect.fn("Conformance.consumeWhile")(function*<B, E>(
    consumer: Effect.Effect<void, unknown, Broker>,
    until: Effect.Effect<boolean>,
    whileRunning: Effect.Effect<B, E, Broker>
  ) {
    const fiber = yield* Effect.forkChild(consumer)
    yield* until.pipe(
      Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (done) => done || fiber.pollUnsafe() !== undefined }),
      Effect.timeout(Duration.seconds(30 * harness.scale))
    )
    const result = yield* whileRunning
    assert.isUndefined(fiber.pollUnsafe(), "the consumer stopped by itself")
    yield* Fiber.interrupt(fiber)
    return result
  })
  /** Runs a consumer until `until` holds, asserts it is still running, then stops it. */
  const consumeUntil = (consumer: Effect.Effect<void, unknown, Broker>, until: Effect.Effect<boolean>) =>
    consumeWhile(consumer, until, Effect.void)

  it.effect("typed Subscriber: ack and nack settle the broker's own deliveries; a nacked one comes back", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("typed-settle")
      const topic = Topic.make(destination, Payload)
      const subscriber = yield* Subscriber.Subscriber
      const deliveries = yield* subscriber.open(topic, { group: "g1", prefetch: 16 })
      const sent = Array.from({ length: 6 }, (_, n) => message(n, `k${n}`))
      yield* publish(destination, sent)
      // With redelivery every message is nacked once, then acked; without, half are nacked, half acked.
      const wanted = caps.redelivery ? 2 : 1
      const attempts = new Map<number, Array<number>>()
      yield* deliveries.pipe(
        Stream.timeout(Duration.times(harness.idle, caps.redelivery ? 3 : 1)),
        Stream.mapEffect((delivery) =>
          Effect.gen(function*() {
            assert.isTrue(Result.isSuccess(delivery.value), "a valid payload did not decode")
            if (Result.isFailure(delivery.value)) return false
            const { n } = delivery.value.success
            const seen = [...(attempts.get(n) ?? []), delivery.envelope.attempt]
            attempts.set(n, seen)
            yield* seen.length === 1 && (caps.redelivery || n % 2 === 0) ? delivery.nack() : delivery.ack
            return [...attempts.values()].filter((a) => a.length >= wanted).length >= sent.length
          })
        ),
        Stream.takeUntil((done) => done),
        Stream.runDrain
      )
      for (let n = 0; n < sent.length; n++) {
        const seen = attempts.get(n) ?? []
        assert.isAtLeast(seen.length, wanted, `message ${n}: delivered ${seen.length} times`)
        if (caps.redelivery) assert.isAbove(seen[1]!, seen[0]!, `message ${n}: attempt did not grow on redelivery`)
      }
    }))

  if (caps.atMostOnce) return

  it.effect("consumer: a handler that throws before returning an effect is a defect, dead-lettered; the consumer goes on", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("throws")
      const topic = Topic.make(destination, Payload)
      yield* Effect.scoped(harness.open(`${destination}.dlq`, "dlq-reader"))
      yield* Effect.scoped(harness.open(destination, "runtime"))
      const handled = new Set<number>()
      yield* publish(destination, Array.from({ length: 4 }, (_, n) => message(n, "k")))
      // No retry policy and no timeout: the consumer's fast path.
      const handler = ({ n }: Payload): Effect.Effect<void> => {
        if (n === 1) throw new Error("thrown before any effect")
        return Effect.sync(() => handled.add(n))
      }
      const dead = yield* consumeWhile(
        Consumer.run(topic, handler, { group: "runtime" }),
        Effect.sync(() => handled.size >= 3),
        harness.readDeadLetters(destination, 1)
      )
      assert.deepStrictEqual([...handled].sort(), [0, 2, 3])
      assert.strictEqual(dead.received.length, 1)
      assert.strictEqual(dead.received[0]?.headers[H.deadLetterErrorTag], "Defect")
      assert.include(dead.received[0]?.headers[H.deadLetterReason] ?? "", "thrown before any effect")
    }))

  it.effect("consumer: messages without an id are never skipped as duplicates when idempotency is on", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("no-id")
      const topic = Topic.make(destination, Payload)
      yield* Effect.scoped(harness.open(destination, "runtime"))
      yield* publish(destination, [message(1, "k", { id: "" }), message(2, "k", { id: "" }), message(3, "k")])
      const handled = new Set<number>()
      yield* consumeUntil(
        Consumer.run(topic, ({ n }) => Effect.sync(() => handled.add(n)), { group: "runtime", idempotency: true }),
        Effect.sync(() => handled.size >= 3)
      )
      assert.deepStrictEqual([...handled].sort(), [1, 2, 3])
    }))

  it.effect("consumer: with idempotency, a message published twice with one id is dead-lettered once by a group", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("dlq-once")
      const topic = Topic.make(destination, Payload)
      yield* Effect.scoped(harness.open(`${destination}.dlq`, "dlq-reader"))
      yield* Effect.scoped(harness.open(destination, "runtime"))
      const poison = message(1, "k", { payload: encoder.encode("{not json") })
      yield* publish(destination, [poison, { ...poison, headers: { "x-copy": "2" } }, message(2, "k")])
      const handled = new Set<number>()
      const dead = yield* consumeWhile(
        Consumer.run(topic, ({ n }) => Effect.sync(() => handled.add(n)), { group: "runtime", idempotency: true }),
        Effect.sync(() => handled.has(2)),
        harness.readDeadLetters(destination, 2)
      )
      assert.strictEqual(dead.received.length, 1, "the same id was dead-lettered more than once")
      assert.strictEqual(dead.received[0]?.headers[H.deadLetterOriginalId], poison.id)
    }))

  it.effect("consumer: a dead letter the broker refuses as too large is parked without the payload; the consumer goes on", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("dlq-large")
      const topic = Topic.make(destination, Payload)
      yield* Effect.scoped(harness.open(`${destination}.dlq`, "dlq-reader"))
      yield* Effect.scoped(harness.open(destination, "runtime"))
      const sent = Array.from({ length: 4 }, (_, n) => message(n, "k", { headers: { "x-origin": `h${n}` } }))
      yield* publish(destination, sent)
      const handled = new Set<number>()
      const refused: Array<string> = []
      // A broker whose size limit only an empty payload stays under.
      const tooLarge = publishingTo(`${destination}.dlq`, (broker, messages) =>
        messages.some((m) => m.payload.length > 0)
          ? Effect.suspend(() => {
            refused.push(messages[0]?.headers[H.deadLetterHeadersOmitted] === undefined ? "full" : "reduced")
            return Effect.fail(new PublishError({ destination: `${destination}.dlq`, reason: reason("TooLarge", "too large (test)") }))
          })
          : broker.publish(`${destination}.dlq`, messages))
      const dead = yield* consumeWhile(
        Consumer.run(
          topic,
          ({ n }) => n === 1 ? Effect.fail(new Flaky({ n })) : Effect.sync(() => handled.add(n)),
          { group: "runtime" }
        ).pipe(Effect.updateService(Broker, tooLarge)),
        Effect.sync(() => handled.size >= 3),
        harness.readDeadLetters(destination, 1)
      )
      assert.deepStrictEqual(refused, ["full", "reduced"], "the full form, then the one without headers, were tried first")
      assert.strictEqual(dead.received.length, 1)
      const parked = dead.received[0]!
      assert.strictEqual(parked.payload.length, 0)
      assert.strictEqual(parked.headers[H.deadLetterPayloadOmitted], "true")
      assert.strictEqual(parked.headers[H.deadLetterPayloadBytes], String(sent[1]!.payload.length))
      assert.strictEqual(parked.headers[H.deadLetterOriginalId], sent[1]!.id)
      assert.strictEqual(parked.headers[H.deadLetterOriginDestination], destination)
      assert.strictEqual(parked.headers[H.deadLetterErrorTag], "Flaky")
      assert.isUndefined(parked.headers["x-origin"], "original headers are left out of the reduced form")
    }))

  if (!caps.redelivery) return

  it.effect("consumer: with deadLetter false a failed handler's delivery is nacked and redelivered; the consumer goes on", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("nack-runtime")
      const topic = Topic.make(destination, Payload)
      yield* Effect.scoped(harness.open(destination, "runtime"))
      yield* publish(destination, Array.from({ length: 3 }, (_, n) => message(n, `k${n}`)))
      const calls = new Map<number, number>()
      const handled = new Set<number>()
      const handler = ({ n }: Payload) =>
        Effect.suspend(() => {
          calls.set(n, (calls.get(n) ?? 0) + 1)
          return n === 1 && calls.get(n) === 1 ? Effect.fail(new Flaky({ n })) : Effect.sync(() => handled.add(n))
        })
      yield* consumeUntil(
        Consumer.run(topic, handler, { group: "runtime", deadLetter: false }),
        Effect.sync(() => handled.size >= 3)
      )
      assert.strictEqual(calls.get(1), 2, "the failed message came back once and was handled")
    }))

  it.effect("consumer: a dead letter that cannot be published is nacked, comes back, and is parked once the destination accepts it", () =>
    Effect.gen(function*() {
      const destination = yield* fresh("dlq-down")
      const topic = Topic.make(destination, Payload)
      yield* Effect.scoped(harness.open(`${destination}.dlq`, "dlq-reader"))
      yield* Effect.scoped(harness.open(destination, "runtime"))
      yield* publish(destination, Array.from({ length: 4 }, (_, n) => message(n, `k${n}`)))
      const calls = new Map<number, number>()
      const handled = new Set<number>()
      let refusalsLeft = 2
      let parked = 0
      const down = publishingTo(`${destination}.dlq`, (broker, messages) =>
        Effect.suspend(() =>
          refusalsLeft-- > 0
            ? Effect.fail(new PublishError({ destination: `${destination}.dlq`, reason: reason("Unreachable", "unreachable (test)") }))
            : Effect.tap(broker.publish(`${destination}.dlq`, messages), () => Effect.sync(() => parked++))
        ))
      const handler = ({ n }: Payload) =>
        Effect.suspend(() => {
          calls.set(n, (calls.get(n) ?? 0) + 1)
          return n === 1 ? Effect.fail(new Flaky({ n })) : Effect.sync(() => handled.add(n))
        })
      yield* consumeUntil(
        Consumer.run(topic, handler, { group: "runtime", deadLetter: { retryDelay: "200 millis"  }}).pipe(
          Effect.updateService(Broker, down)
        ),
        Effect.sync(() => handled.size >= 3 && parked === 1)
      )
      assert.strictEqual(calls.get(1), 3, "delivered again after each failed dead-letter publish")
      const dead = yield* harness.readDeadLetters(destination, 1)
      assert.strictEqual(dead.received.length, 1)
      assert.strictEqual(dead.received[0]?.headers[H.deadLetterErrorTag], "Flaky")
    }))
}
