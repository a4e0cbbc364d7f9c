/**
 * "Nothing silently dropped, nothing crashes" (issue 9), core part, under TestClock on the in-memory broker:
 * - a handler that throws before returning an effect is a defect, dead-lettered like any other;
 * - messages without an id (or with one made up per delivery) are never skipped as duplicates;
 * - a dead letter is always publishable: bounded, one-line reason headers; reduced forms when the broker
 *   refuses it for good; a configurable delay when the broker is down;
 * - one id ends in one outcome per group (a dead-lettered id is recorded as done);
 * - deliveries taken but not started when shutdown begins go back to the broker at once;
 * - errors that say they are not retryable are not retried, and only retryable subscription failures restart.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Deferred, Effect, Exit, Fiber, References, Schedule, Schema, Stream } from "effect"
import { Broker, Consumer, Envelope, Errors, Headers as H, MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"
import * as KeyValueStore from "effect/persistence/KeyValueStore"

const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, References.MinimumLogLevel, "None")
const memory = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Switchyard.layerMemory({ partitions: 1 })), quiet)
/** The in-memory stack with its broker wrapped (fault injection). */
const wrapped = (wrap: (broker: Broker.BrokerShape) => Broker.BrokerShape) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Switchyard.on(MemoryBroker.layerWrapped(wrap, { partitions: 1 }))), quiet)

const Item = Schema.Struct({ id: Schema.String })
type Item = typeof Item.Type
const items = Topic.make("items", Item, { key: () => "one-lane" })
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const raw = (id: string, payload: string, fields: Partial<Omit<Envelope.OutgoingMessage, "payload">> = {}) =>
  Envelope.outgoing(encoder.encode(payload), { id, key: "one-lane", contentType: "application/json", ...fields })
const itemOf = (envelope: Envelope.Envelope): string => JSON.parse(decoder.decode(envelope.payload)).id

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

/** Runs a consumer in the background until the group has acknowledged everything, then checks it is alive. */
const consumeAll = <E>(handler: Consumer.Handler<Item, E, never>, options: Consumer.Options<E> = {}) =>
  Effect.gen(function*() {
    const inspect = yield* MemoryBroker.MemoryBroker
    const consumer = yield* Consumer.run(items, handler, { group: "g", ...options }).pipe(Effect.forkChild)
    const drained = yield* TestKit.advanceUntil(Effect.map(inspect.lag("items", "g"), (lag) => lag === 0), {
      within: "30 seconds"
    })
    assert.isTrue(drained, "the group did not acknowledge every message")
    assert.isUndefined(consumer.pollUnsafe(), "the consumer stopped by itself")
    yield* Fiber.interrupt(consumer)
    return inspect
  })

describe("a handler that throws before returning an effect", () => {
  for (const [label, options] of [["fast path", {}], ["with a retry policy", { retry: Schedule.recurs(2) }]] as const) {
    it.effect(`is a defect, dead-lettered, and the consumer handles the next message (${label})`, () =>
      Effect.gen(function*() {
        yield* Publisher.publishAll(items, [{ id: "throws" }, { id: "fine" }])
        const handled: Array<string> = []
        const inspect = yield* consumeAll((item): Effect.Effect<void> => {
          if (item.id === "throws") throw new Error("thrown synchronously")
          return Effect.sync(() => handled.push(item.id))
        }, options)
        assert.deepStrictEqual(handled, ["fine"])
        const dead = yield* inspect.deadLetters("items")
        assert.deepStrictEqual(dead.map((d) => [itemOf(d), d.headers[H.deadLetterErrorTag]]), [["throws", "Defect"]])
        assert.include(dead[0]!.headers[H.deadLetterReason], "thrown synchronously")
      }).pipe(memory))
  }
})

describe("messages without a usable id are never skipped as duplicates", () => {
  it.effect("raw publishes with an empty id get stable, distinct ids from the in-memory broker's coordinates", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish("items", [raw("", `{"id":"a"}`), raw("", `{"id":"b"}`)])
      const seen: Array<[string, string, string | undefined]> = []
      yield* consumeAll((item, envelope) => Effect.sync(() => seen.push([item.id, envelope.id, envelope.idSource])), {
        idempotency: true
      })
      assert.deepStrictEqual(seen, [["a", "items/0/0", "broker"], ["b", "items/0/1", "broker"]])
    }).pipe(memory))

  // Envelopes as an adapter that predates `IncomingEnvelope` built them (id ""), or with ids made up per
  // delivery: the consumer must not consult the ledger for them.
  for (const [label, rewrite] of [
    ["empty ids (legacy adapters)", { id: "" }],
    ["ids generated per delivery", { id: "made-up", idSource: "generated" as const }]
  ] as const) {
    it.effect(`${label}: every message is handled with idempotency on`, () =>
      Effect.gen(function*() {
        yield* Publisher.publishAll(items, [{ id: "a" }, { id: "b" }, { id: "c" }])
        const handled: Array<string> = []
        const inspect = yield* consumeAll((item) => Effect.sync(() => handled.push(item.id)), { idempotency: true })
        assert.deepStrictEqual(handled, ["a", "b", "c"])
        assert.strictEqual((yield* inspect.deadLetters("items")).length, 0)
      }).pipe(wrapped((broker) => ({
        ...broker,
        subscribe: (destination, options) =>
          Effect.map(broker.subscribe(destination, options), (subscription) => ({
            ...subscription,
            deliveries: Stream.map(subscription.deliveries, (delivery) => ({
              envelope: { ...delivery.envelope, ...rewrite },
              ack: delivery.ack,
              nack: (nackOptions) => delivery.nack(nackOptions)
            }))
          }))
      }))))
  }
})

describe("the ledger is not consulted for ids made up per delivery", () => {
  it.effect("a generated id that happens to be recorded (a store shared with older consumers) is still handled", () =>
    Effect.gen(function*() {
      const store = yield* KeyValueStore.KeyValueStore
      yield* store.set("switchyard:processed:items:g:made-up", "1")
      yield* Publisher.publishAll(items, [{ id: "a" }, { id: "b" }])
      const handled: Array<string> = []
      yield* consumeAll((item) => Effect.sync(() => handled.push(item.id)), { idempotency: { store } })
      assert.deepStrictEqual(handled, ["a", "b"])
    }).pipe(
      wrapped((broker) => ({
        ...broker,
        subscribe: (destination, options) =>
          Effect.map(broker.subscribe(destination, options), (subscription) => ({
            ...subscription,
            deliveries: Stream.map(subscription.deliveries, (delivery) => ({
              envelope: { ...delivery.envelope, id: "made-up", idSource: "generated" as const },
              ack: delivery.ack,
              nack: (nackOptions) => delivery.nack(nackOptions)
            }))
          }))
      })),
      Effect.provide(KeyValueStore.layerMemory)
    ))
})

/** A broker that refuses (kind TooLarge) every dead letter over a size limit, and records every attempt. */
const sizeLimitedDeadLetters = (
  limit: (message: Envelope.OutgoingMessage) => boolean,
  attempts: Array<Envelope.OutgoingMessage>,
  kind: Errors.ErrorKind = "TooLarge"
) =>
(broker: Broker.BrokerShape): Broker.BrokerShape => ({
  ...broker,
  publish: (destination, messages) =>
    !destination.endsWith(".dlq")
      ? broker.publish(destination, messages)
      : Effect.suspend(() => {
        attempts.push(...messages)
        return messages.every(limit)
          ? broker.publish(destination, messages)
          : Effect.fail(new Errors.PublishError({ destination, reason: Errors.reason(kind, "message too large (test)") }))
      })
})
const headerBytes = (message: Envelope.OutgoingMessage) =>
  Object.entries(message.headers).reduce((sum, [name, value]) => sum + name.length + value.length, 0)

describe("a dead letter is always publishable", () => {
  it.effect("the broker refuses it for its headers: parked without the original headers, the next message handled", () => {
    const attempts: Array<Envelope.OutgoingMessage> = []
    return Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish("items", [
        raw("big-headers", `{"id":"big"}`, { headers: { "x-big": "h".repeat(16_384), "x-small": "s" } }),
        raw("next", `{"id":"next"}`)
      ])
      const handled: Array<string> = []
      const inspect = yield* consumeAll((item) =>
        item.id === "big" ? Effect.fail(new Boom({ message: "no" })) : Effect.sync(() => handled.push(item.id))
      )
      assert.deepStrictEqual(handled, ["next"])
      assert.deepStrictEqual(attempts.map((m) => m.headers[H.deadLetterHeadersOmitted]), [undefined, "2"])
      const [dead] = yield* inspect.deadLetters("items")
      assert.strictEqual(itemOf(dead!), "big", "the payload is kept")
      assert.isUndefined(dead!.headers["x-big"])
      assert.strictEqual(dead!.headers[H.deadLetterHeadersOmitted], "2")
      assert.strictEqual(dead!.headers[H.deadLetterErrorTag], "Boom")
      assert.strictEqual(dead!.headers[H.deadLetterOriginalId], "big-headers")
      assert.isUndefined(dead!.headers[H.deadLetterPayloadOmitted])
    }).pipe(wrapped(sizeLimitedDeadLetters((m) => headerBytes(m) < 4096, attempts)))
  })

  it.effect("the broker refuses it for its payload: parked without the payload, with its size and origin, the next handled", () => {
    const attempts: Array<Envelope.OutgoingMessage> = []
    return Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const huge = `{"id":7,"pad":"${"p".repeat(100_000)}"}`
      yield* broker.publish("items", [raw("huge", huge, { headers: { "x-origin": "producer" } }), raw("next", `{"id":"next"}`)])
      const handled: Array<string> = []
      const inspect = yield* consumeAll((item) => Effect.sync(() => handled.push(item.id)))
      assert.deepStrictEqual(handled, ["next"])
      assert.strictEqual(attempts.length, 3, "full, headers omitted, payload omitted")
      const dead = yield* inspect.deadLetters("items")
      assert.strictEqual(dead.length, 1)
      const parked = dead[0]!
      assert.strictEqual(parked.payload.length, 0)
      assert.strictEqual(parked.headers[H.deadLetterPayloadOmitted], "true")
      assert.strictEqual(parked.headers[H.deadLetterPayloadBytes], String(encoder.encode(huge).length))
      assert.strictEqual(parked.headers[H.deadLetterErrorTag], "DecodeError")
      assert.strictEqual(parked.headers[H.deadLetterOriginDestination], "items")
      assert.deepStrictEqual(JSON.parse(parked.headers[H.deadLetterOriginCoordinates]!), {
        destination: "items",
        partition: 0,
        offset: "0",
        lane: "0"
      })
      assert.isAtMost(parked.headers[H.deadLetterReason]!.length, 256 + 40)
      assert.isUndefined(parked.headers["x-origin"])
    }).pipe(wrapped(sizeLimitedDeadLetters((m) => m.payload.length < 1024, attempts)))
  })

  it.effect("refused in every form: nacked with the delay (never acked), redelivered; the consumer goes on", () => {
    const attempts: Array<Envelope.OutgoingMessage> = []
    return Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publishAll(items, [{ id: "poison" }, { id: "next" }])
      const seen: Array<[string, number, number]> = []
      const consumer = yield* Consumer.run(
        items,
        (item, envelope) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            seen.push([item.id, envelope.attempt, now])
            return item.id === "poison" ? Effect.fail(new Boom({ message: "no" })) : Effect.void
          }),
        { group: "g", deadLetter: { retryDelay: "5 seconds"  }}
      ).pipe(Effect.forkChild)
      yield* TestKit.advance("12 seconds", "100 millis")
      assert.isUndefined(consumer.pollUnsafe(), "the consumer stopped by itself")
      const poison = seen.filter(([id]) => id === "poison")
      assert.deepStrictEqual(poison.map(([, attempt]) => attempt), [1, 2, 3])
      assert.isAtLeast(poison[1]![2] - poison[0]![2], 5000)
      assert.isTrue(seen.some(([id]) => id === "next"), "the next message was handled")
      assert.strictEqual(attempts.length, 9, "three forms per delivery")
      assert.deepStrictEqual(yield* inspect.committedOffsets("items", "g"), [0], "the poison message is not acknowledged")
      assert.strictEqual((yield* inspect.deadLetters("items")).length, 0)
      yield* Fiber.interrupt(consumer)
    }).pipe(wrapped(sizeLimitedDeadLetters(() => false, attempts, "Invalid")))
  })

  it.effect("a broker that is down (retryable): nacked with the configured delay, parked once it is back", () => {
    let refusals = 2
    const times: Array<number> = []
    const down = (broker: Broker.BrokerShape): Broker.BrokerShape => ({
      ...broker,
      publish: (destination, messages) =>
        !destination.endsWith(".dlq")
          ? broker.publish(destination, messages)
          : Effect.flatMap(Clock.currentTimeMillis, (now) => {
            times.push(now)
            return refusals-- > 0
              ? Effect.fail(new Errors.PublishError({ destination, reason: Errors.reason("Unreachable", "connection lost") }))
              : broker.publish(destination, messages)
          })
    })
    return Effect.gen(function*() {
      yield* Publisher.publish(items, { id: "poison" })
      const inspect = yield* consumeAll(() => Effect.fail(new Boom({ message: "no" })), { deadLetter: { retryDelay: "3 seconds"  }})
      assert.strictEqual(times.length, 3, "one form per attempt: a retryable failure does not shrink the dead letter")
      assert.isAtLeast(times[1]! - times[0]!, 3000)
      assert.isAtLeast(times[2]! - times[1]!, 3000)
      assert.strictEqual((yield* inspect.deadLetters("items")).length, 1)
    }).pipe(wrapped(down))
  })

  it.effect("what the dead-letter headers add is bounded, one line and well formed; the id fits a 255-byte field", () =>
    Effect.gen(function*() {
      // As long as a message id may be (IncomingEnvelope keeps ids up to 255 characters): `<id>.dlq.g` is longer.
      const longId = "i".repeat(255)
      yield* Publisher.publish(items, { id: "x" }, { id: longId })
      const reason = `first line\r\nsecond line\n${"r".repeat(5000)}\u0000end \uD800 lone`
      const delivered: Array<Envelope.Envelope> = []
      const inspect = yield* consumeAll((_, envelope) =>
        Effect.andThen(Effect.sync(() => delivered.push(envelope)), Effect.fail(new Boom({ message: reason })))
      )
      const [dead] = yield* inspect.deadLetters("items")
      const headers = dead!.headers
      for (const [name, value] of Object.entries(headers)) {
        if (!name.startsWith("x-switchyard-dlq-")) continue
        assert.notMatch(value, /[\u0000-\u001F\u007F]/, `${name} holds a control character`)
        assert.isAtMost(value.length, 1024 + 40, `${name} is not bounded`)
      }
      assert.match(headers[H.deadLetterReason]!, /^first line second line r+… \[\d+ more characters\]$/)
      // The id the dead letter was published with (the broker kept it: it is a usable id).
      const sent = Consumer.deadLetterMessage(delivered[0]!, "g", { reason, errorTag: "Boom", attempts: 1 }, 0)
      assert.strictEqual(dead!.id, sent.id)
      assert.isAtMost(encoder.encode(sent.id).length, 200)
      assert.strictEqual(
        sent.id,
        Consumer.deadLetterMessage(delivered[0]!, "g", { reason: "other", errorTag: "Boom", attempts: 2 }, 1).id,
        "the id is stable"
      )
      assert.strictEqual(headers[H.deadLetterOriginalId], longId)
    }).pipe(memory))

  it.effect("a producer's own dead-letter and envelope headers are not copied into the dead letter", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish("items", [
        raw("spoof", `{"id":1}`, {
          headers: { "x-switchyard-dlq-payload-omitted": "true", "x-switchyard-timestamp": "NaN", "x-keep": "kept" }
        })
      ])
      const inspect = yield* consumeAll(() => Effect.void)
      const [dead] = yield* inspect.deadLetters("items")
      assert.isUndefined(dead!.headers[H.deadLetterPayloadOmitted])
      assert.isUndefined(dead!.headers[H.timestamp])
      assert.strictEqual(dead!.headers["x-keep"], "kept")
      assert.strictEqual(dead!.headers[H.deadLetterErrorTag], "DecodeError")
    }).pipe(memory))
})

describe("idempotency and dead letters: one id, one outcome per group", () => {
  it.effect("a message published twice with the same id is dead-lettered once", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      yield* broker.publish("items", [raw("dup", "{not json"), raw("dup", "{not json"), raw("dup-2", `{"id":"z"}`)])
      let calls = 0
      yield* Publisher.publish(items, { id: "fails" }, { id: "same" })
      yield* Publisher.publish(items, { id: "fails" }, { id: "same" })
      const inspect = yield* consumeAll((item) =>
        Effect.suspend(() => {
          calls++
          return item.id === "fails" ? Effect.fail(new Boom({ message: "no" })) : Effect.void
        }), { idempotency: true })
      const dead = yield* inspect.deadLetters("items")
      assert.deepStrictEqual(dead.map((d) => d.headers[H.deadLetterOriginalId]), ["dup", "same"])
      assert.strictEqual(calls, 2, "z once, the failing one once")
    }).pipe(memory))

  it.effect("a redelivery of a message already dead-lettered is neither dead-lettered again nor handled", () => {
    // The first ack of every message is lost: the broker redelivers it (as after a crash right after parking).
    const lostAcks = new Set<string>()
    const losingAcks = (broker: Broker.BrokerShape): Broker.BrokerShape => ({
      ...broker,
      subscribe: (destination, options) =>
        Effect.map(broker.subscribe(destination, options), (subscription) => ({
          ...subscription,
          deliveries: Stream.map(subscription.deliveries, (delivery) => ({
            envelope: delivery.envelope,
            ack: Effect.suspend(() => {
              if (lostAcks.has(delivery.envelope.id)) return delivery.ack
              lostAcks.add(delivery.envelope.id)
              return delivery.nack()
            }),
            nack: (nackOptions) => delivery.nack(nackOptions)
          }))
        }))
    })
    return Effect.gen(function*() {
      yield* Publisher.publish(items, { id: "flaky" }, { id: "flaky-1" })
      const attempts: Array<number> = []
      const handled: Array<number> = []
      const inspect = yield* consumeAll((_, envelope) =>
        Effect.suspend(() => {
          attempts.push(envelope.attempt)
          // Fails on its first delivery only: a second run would succeed.
          return envelope.attempt === 1 ? Effect.fail(new Boom({ message: "once" })) : Effect.sync(() => handled.push(envelope.attempt))
        }), { idempotency: true })
      assert.deepStrictEqual(attempts, [1], "the redelivery did not run the handler")
      assert.deepStrictEqual(handled, [])
      assert.strictEqual((yield* inspect.deadLetters("items")).length, 1)
    }).pipe(wrapped(losingAcks))
  })
})

describe("graceful drain", () => {
  it.effect("deliveries taken but not started when shutdown begins are nacked at once and another member handles them", () => {
    const nacks: Array<[string, unknown]> = []
    const recording = (broker: Broker.BrokerShape): Broker.BrokerShape => ({
      ...broker,
      subscribe: (destination, options) =>
        Effect.map(broker.subscribe(destination, options), (subscription) => ({
          ...subscription,
          deliveries: Stream.map(subscription.deliveries, (delivery) => ({
            envelope: delivery.envelope,
            ack: delivery.ack,
            nack: (nackOptions) =>
              Effect.andThen(Effect.sync(() => nacks.push([delivery.envelope.id, nackOptions?.delay])), delivery.nack(nackOptions))
          }))
        }))
    })
    return Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      yield* Publisher.publish(items, { id: "slow" }, { id: "m0" })
      yield* Publisher.publish(items, { id: "b1" }, { id: "m1" })
      yield* Publisher.publish(items, { id: "b2" }, { id: "m2" })
      const started = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const byA: Array<string> = []
      const a = yield* Consumer.run(
        items,
        (item) =>
          Effect.andThen(
            Effect.sync(() => byA.push(item.id)),
            item.id === "slow" ? Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(finish)) : Effect.void
          ),
        { group: "g", prefetch: 8, drainTimeout: "1 minute" }
      ).pipe(Effect.forkChild)
      yield* Deferred.await(started)
      assert.strictEqual(yield* inspect.inFlight("items", "g"), 3, "A took all three")
      // B joins the group; the single partition stays with A.
      const byB: Array<[string, number]> = []
      const b = yield* Consumer.run(items, (item, envelope) => Effect.sync(() => byB.push([item.id, envelope.attempt])), {
        group: "g"
      }).pipe(Effect.forkChild)
      yield* TestKit.settle()
      assert.deepStrictEqual(byB, [])
      // A stops while its slow handler still runs: B handles the two it had buffered, without waiting for A.
      const stopping = yield* Fiber.interrupt(a).pipe(Effect.forkChild)
      const handedOver = yield* TestKit.advanceUntil(Effect.sync(() => byB.length === 2), { within: "1 second" })
      const nacksDuringDrain = [...nacks]
      yield* Deferred.succeed(finish, undefined)
      yield* Fiber.join(stopping)
      assert.isTrue(handedOver, "the buffered deliveries waited for A's drain")
      assert.deepStrictEqual(byB, [["b1", 2], ["b2", 2]])
      assert.deepStrictEqual(nacksDuringDrain, [["m1", undefined], ["m2", undefined]])
      assert.deepStrictEqual(byA, ["slow"])
      // A's drained handler was acked: nothing is left, nothing comes again.
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("items", "g"), (lag) => lag === 0), { within: "1 second" }))
      yield* TestKit.advance("1 second")
      assert.strictEqual(byB.length, 2)
      yield* Fiber.interrupt(b)
    }).pipe(wrapped(recording))
  })
})

describe("errors that say they are not retryable", () => {
  class Fatal extends Data.TaggedError("Fatal")<{}> {
    get isRetryable(): boolean {
      return false
    }
  }
  const cases = [
    ["a PublishError of kind Unroutable", new Errors.PublishError({ destination: "audit", reason: Errors.reason("Unroutable", "NO_ROUTE") }), 1],
    ["a PublishError of kind TooLarge", new Errors.PublishError({ destination: "audit", reason: Errors.reason("TooLarge", "too big") }), 1],
    ["an error with isRetryable false", new Fatal(), 1],
    ["a PublishError of kind Timeout", new Errors.PublishError({ destination: "audit", reason: Errors.reason("Timeout", "timed out") }), 6],
    ["a PublishError without a kind", new Errors.PublishError({ destination: "audit", reason: Errors.reason("Unknown", "?") }), 6]
  ] as const
  for (const [label, error, runs] of cases) {
    it.effect(`${label}: the handler runs ${runs} time(s) under a 5-retry policy, then is dead-lettered`, () =>
      Effect.gen(function*() {
        yield* Publisher.publish(items, { id: "x" })
        let calls = 0
        const inspect = yield* consumeAll(() =>
          Effect.suspend(() => {
            calls++
            return Effect.fail(error)
          }), {
          retry: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 5 }))
        })
        assert.strictEqual(calls, runs)
        const [dead] = yield* inspect.deadLetters("items")
        assert.strictEqual(dead!.headers[H.deadLetterAttempts], String(runs))
      }).pipe(memory))
  }
})

describe("Consumer.restart retries only retryable subscription failures", () => {
  const failingOnce = (kind: Errors.ErrorKind | undefined, subscriptions: { count: number }) =>
    MemoryBroker.layerWrapped((broker) => ({
      ...broker,
      subscribe: (destination, options) =>
        Effect.map(broker.subscribe(destination, options), (subscription) =>
          ++subscriptions.count === 1
            ? { deliveries: Stream.fail(new Errors.SubscribeError({ destination, reason: Errors.reason(kind ?? "Unknown", "refused") })) }
            : subscription)
    }), { partitions: 1 })

  for (const [kind, restarts] of [["AuthorizationFailed", false], ["NotFound", false], ["Unreachable", true], [undefined, true]] as const) {
    it.effect(`a SubscribeError of kind ${kind ?? "(none)"} ${restarts ? "restarts" : "fails the consumer"}`, () => {
      const subscriptions = { count: 0 }
      return Effect.gen(function*() {
        yield* Publisher.publish(items, { id: "a" })
        const handled: Array<string> = []
        const fiber = yield* Consumer.run(items, (item) => Effect.sync(() => handled.push(item.id)), {
          group: "g",
          restart: Schedule.spaced("100 millis")
        }).pipe(Effect.forkChild)
        yield* TestKit.advance("2 seconds")
        const exit = fiber.pollUnsafe()
        if (restarts) {
          assert.isUndefined(exit, "the consumer stopped")
          assert.deepStrictEqual(handled, ["a"])
          assert.strictEqual(subscriptions.count, 2)
          yield* Fiber.interrupt(fiber)
        } else {
          assert.isTrue(exit !== undefined && Exit.isFailure(exit), "the consumer kept restarting")
          assert.strictEqual(subscriptions.count, 1)
        }
      }).pipe(Effect.provide(Switchyard.on(failingOnce(kind, subscriptions))), quiet)
    })
  }
})
