/**
 * Model-based test of the consumer runtime over the in-memory broker, under TestClock.
 *
 * fast-check generates random interleavings of:
 * - publishing batches of messages whose payload says how the handler treats them (succeed, fail
 *   transiently N times, fail permanently, die, hang past the handler timeout), with random latencies;
 * - letting virtual time pass;
 * - stopping / starting / restarting the consumer (interrupting its fiber: a graceful drain with a short
 *   drain timeout, so some handlers get interrupted mid-flight);
 * - a competing member of the same group (via `Subscriber`) that takes deliveries and nacks them (with a
 *   delay) or abandons them.
 *
 * Invariants:
 * - at every ack, the handler completed for that very delivery, or the message is in the DLQ;
 * - after draining: nothing is lost (every message was handled successfully or dead-lettered, exactly as
 *   its behaviour dictates), the group has no lag and nothing in flight, handled ≥ published − dead.
 */
import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Fiber, References, Schedule, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import type { Envelope as EnvelopeModule } from "@switchyard/core"
import { Consumer, Headers as H, MemoryBroker, Publisher, Subscriber, Switchyard, Topic } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"

const Behaviour = Schema.Literals(["ok", "transient", "permanent", "defect", "hang"])
type Behaviour = typeof Behaviour.Type
const Msg = Schema.Struct({
  id: Schema.String,
  key: Schema.String,
  behaviour: Behaviour,
  failures: Schema.Number,
  latency: Schema.Number
})
type Msg = typeof Msg.Type
type Envelope = EnvelopeModule.Envelope
const TOPIC = "model"
const GROUP = "model-group"
const topic = Topic.make(TOPIC, Msg, { key: (m) => m.key })

class Transient extends Data.TaggedError("Transient")<{ readonly id: string }> {}
class Permanent extends Data.TaggedError("Permanent")<{ readonly id: string }> {}

type Spec = Omit<Msg, "id">
type Op =
  | { readonly _tag: "publish"; readonly messages: ReadonlyArray<Spec> }
  | { readonly _tag: "advance"; readonly millis: number }
  | { readonly _tag: "start" }
  | { readonly _tag: "stop" }
  | { readonly _tag: "restart" }
  | { readonly _tag: "rogue"; readonly take: number; readonly settle: "nack" | "abandon"; readonly nackDelay: number }

interface Config {
  readonly concurrency: number
  readonly ordering: Consumer.Ordering
  readonly drainTimeout: number
  readonly ops: ReadonlyArray<Op>
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  key: fc.constantFrom("k1", "k2", "k3", "k4", "k5"),
  behaviour: fc.constantFrom<Behaviour>("ok", "ok", "ok", "transient", "transient", "permanent", "defect", "hang"),
  failures: fc.integer({ min: 1, max: 3 }),
  latency: fc.integer({ min: 0, max: 80 })
})

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ _tag: fc.constant("publish" as const), messages: fc.array(specArb, { minLength: 1, maxLength: 4 }) }), weight: 5 },
  { arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 1, max: 150 }) }), weight: 4 },
  { arbitrary: fc.constant({ _tag: "start" as const }), weight: 1 },
  { arbitrary: fc.constant({ _tag: "stop" as const }), weight: 1 },
  { arbitrary: fc.constant({ _tag: "restart" as const }), weight: 2 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("rogue" as const),
      take: fc.integer({ min: 1, max: 3 }),
      settle: fc.constantFrom("nack" as const, "abandon" as const),
      nackDelay: fc.integer({ min: 0, max: 100 })
    }),
    weight: 2
  }
)

const configArb: fc.Arbitrary<Config> = fc.record({
  concurrency: fc.integer({ min: 1, max: 4 }),
  ordering: fc.constantFrom<Consumer.Ordering>("key", "none", "partition"),
  drainTimeout: fc.integer({ min: 5, max: 200 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 25 })
})

/** What the test observed. */
interface World {
  readonly published: Array<Msg>
  /** Handler attempts per message id (all deliveries). */
  readonly attempts: Map<string, number>
  /** Broker delivery attempts (`envelope.attempt`) the handler saw, per message id. */
  readonly deliveries: Map<string, Set<number>>
  /** `id#deliveryAttempt` of every handler run that completed successfully. */
  readonly completedDeliveries: Set<string>
  readonly completedIds: Set<string>
  readonly ackViolations: Array<string>
  acks: number
}

/**
 * The in-memory stack, with the broker wrapped so that every ack checks the invariant "the handler
 * completed for this delivery, or the message was dead-lettered".
 */
const stack = (world: World) =>
  Switchyard.on(MemoryBroker.layerWrapped((broker, inspect) => {
    const checkAck = (envelope: Envelope) =>
      Effect.flatMap(inspect.deadLetters(TOPIC), (dead) =>
        Effect.sync(() => {
          world.acks++
          const completed = world.completedDeliveries.has(`${envelope.id}#${envelope.attempt}`)
          const deadLettered = dead.some((d) => d.headers[H.deadLetterOriginalId] === envelope.id)
          if (!completed && !deadLettered) {
            world.ackViolations.push(`${envelope.id} (delivery ${envelope.attempt}) acked without completion or DLQ`)
          }
        }))
    return {
      ...broker,
      subscribe: (destination, options) =>
        Effect.map(broker.subscribe(destination, options), (subscription) => ({
          deliveries: Stream.map(subscription.deliveries, (raw) => ({
            ...raw,
            ack: destination === TOPIC ? Effect.andThen(checkAck(raw.envelope), raw.ack) : raw.ack
          }))
        }))
    }
  }, { partitions: 4 }))

/** The dead-letter error tag each failing behaviour must produce (undefined: must be handled). */
const expectedTag: Record<Behaviour, string | undefined> = {
  ok: undefined,
  transient: undefined,
  permanent: "Permanent",
  defect: "Defect",
  hang: "HandlerTimeoutError"
}

const runModel = (config: Config) =>
  Effect.gen(function*() {
    const world: World = {
      published: [],
      attempts: new Map(),
      deliveries: new Map(),
      completedDeliveries: new Set(),
      completedIds: new Set(),
      ackViolations: [],
      acks: 0
    }
    return yield* Effect.gen(function*() {
      const inspect = yield* MemoryBroker.MemoryBroker
      const subscriber = yield* Subscriber.Subscriber
      let nextId = 0

      const handler = (msg: Msg, envelope: Envelope) =>
        Effect.gen(function*() {
          const attempt = (world.attempts.get(msg.id) ?? 0) + 1
          world.attempts.set(msg.id, attempt)
          const seen = world.deliveries.get(msg.id) ?? new Set<number>()
          world.deliveries.set(msg.id, seen.add(envelope.attempt))
          yield* Effect.sleep(`${msg.latency} millis`)
          switch (msg.behaviour) {
            case "permanent":
              return yield* new Permanent({ id: msg.id })
            case "defect":
              return yield* Effect.die(new Error(`defect in ${msg.id}`))
            case "hang":
              yield* Effect.sleep("1 hour")
              break
            case "transient":
              if (attempt <= msg.failures) return yield* new Transient({ id: msg.id })
              break
            case "ok":
              break
          }
          world.completedDeliveries.add(`${msg.id}#${envelope.attempt}`)
          world.completedIds.add(msg.id)
        })

      const consumerOptions: Consumer.Options<Transient | Permanent> = {
        group: GROUP,
        concurrency: config.concurrency,
        ordering: config.ordering,
        drainTimeout: `${config.drainTimeout} millis`,
        handlerTimeout: "150 millis",
        retry: { schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 3 })), isRetryable: (error) => error._tag === "Transient" || error._tag === "HandlerTimeoutError" }
      }

      let consumer: Fiber.Fiber<unknown, unknown> | undefined
      const start = Effect.gen(function*() {
        if (consumer !== undefined) return
        consumer = yield* Consumer.run(topic, handler, consumerOptions).pipe(Effect.forkChild)
        yield* TestKit.settle()
      })
      const stop = Effect.gen(function*() {
        if (consumer === undefined) return
        const fiber = consumer
        consumer = undefined
        // Interrupting waits for the drain, which needs virtual time to pass.
        const stopping = yield* Effect.forkChild(Fiber.interrupt(fiber))
        const stopped = yield* TestKit.advanceUntil(
          Effect.sync(() => stopping.pollUnsafe() !== undefined),
          { within: `${config.drainTimeout + 100} millis`, step: "5 millis" }
        )
        assert.isTrue(stopped, `consumer did not stop within drainTimeout (${config.drainTimeout}ms) + 100ms`)
      })
      const rogue = (op: Extract<Op, { _tag: "rogue" }>) =>
        Effect.scoped(Effect.gen(function*() {
          const deliveries = yield* subscriber.open(topic, { group: GROUP, prefetch: op.take })
          const taking = yield* deliveries.pipe(
            Stream.take(op.take),
            Stream.mapEffect((delivery) =>
              op.settle === "nack" ? delivery.nack({ delay: `${op.nackDelay} millis` }) : Effect.void
            ),
            Stream.runDrain,
            Effect.forkChild
          )
          yield* TestKit.advance("20 millis", "5 millis")
          yield* Fiber.interrupt(taking)
        }))

      for (const op of config.ops) {
        switch (op._tag) {
          case "publish": {
            const messages = op.messages.map((spec) => ({ ...spec, id: `m${nextId++}` }))
            world.published.push(...messages)
            yield* Publisher.publishMessages(topic, messages.map((value) => ({ value, options: { id: value.id } })))
            break
          }
          case "advance":
            yield* TestKit.advance(`${op.millis} millis`, "5 millis")
            break
          case "start":
            yield* start
            break
          case "stop":
            yield* stop
            break
          case "restart":
            yield* stop
            yield* start
            break
          case "rogue":
            yield* rogue(op)
            break
        }
      }

      // Drain: make sure a consumer runs, and wait until every message reached its expected outcome.
      yield* start
      const deadIds = Effect.map(
        inspect.deadLetters(TOPIC),
        (dead) => new Set(dead.map((d) => d.headers[H.deadLetterOriginalId]!))
      )
      const expectedDone = Effect.gen(function*() {
        const dead = yield* deadIds
        const lag = yield* inspect.lag(TOPIC, GROUP)
        const inFlight = yield* inspect.inFlight(TOPIC, GROUP)
        return lag === 0 && inFlight === 0 && world.published.every((m) =>
          expectedTag[m.behaviour] !== undefined ? dead.has(m.id) : world.completedIds.has(m.id)
        )
      })
      const drained = yield* TestKit.advanceUntil(expectedDone, { within: "2 minutes", step: "20 millis" })
      yield* TestKit.advance("1 second", "50 millis")
      yield* stop

      const dead = yield* inspect.deadLetters(TOPIC)
      const deadById = new Map(dead.map((d) => [d.headers[H.deadLetterOriginalId]!, d]))
      const lag = yield* inspect.lag(TOPIC, GROUP)
      const inFlight = yield* inspect.inFlight(TOPIC, GROUP)
      const publishedCount = yield* inspect.publishedCount(TOPIC)

      assert.strictEqual(publishedCount, world.published.length)
      const lost = world.published.filter((m) => !world.completedIds.has(m.id) && !deadById.has(m.id))
      assert.deepStrictEqual(lost.map((m) => m.id), [], "messages neither handled nor dead-lettered (lost)")
      assert.isTrue(drained, `not drained: lag=${lag} inFlight=${inFlight}`)
      assert.strictEqual(lag, 0, "group lag after draining")
      assert.strictEqual(inFlight, 0, "in-flight after draining")
      assert.deepStrictEqual(world.ackViolations, [], "acks without completion or dead-letter")
      for (const m of world.published) {
        const d = deadById.get(m.id)
        const tag = expectedTag[m.behaviour]
        if (tag !== undefined) {
          assert.isFalse(world.completedIds.has(m.id), `${m.id} (${m.behaviour}) completed`)
          assert.isDefined(d, `${m.id} (${m.behaviour}) not dead-lettered`)
          assert.strictEqual(d!.headers[H.deadLetterErrorTag], tag)
          assert.isAtLeast(Number(d!.headers[H.deadLetterAttempts]), 1)
          assert.strictEqual(d!.headers[H.deadLetterOriginGroup], GROUP)
          if (m.behaviour === "hang") {
            // Timed out, retried by the schedule (3 retries), so the dead letter counts ≥ 4 attempts.
            assert.isAtLeast(Number(d!.headers[H.deadLetterAttempts]), 4)
          } else {
            // Fatal errors and defects are not retried: one handler run per delivery.
            assert.strictEqual(world.attempts.get(m.id), world.deliveries.get(m.id)!.size, `${m.id} was retried`)
          }
        } else {
          assert.isTrue(world.completedIds.has(m.id), `${m.id} (${m.behaviour}) never completed`)
          assert.isUndefined(d, `${m.id} (${m.behaviour}) was dead-lettered: ${d?.headers[H.deadLetterReason]}`)
          if (m.behaviour === "transient") assert.isAbove(world.attempts.get(m.id)!, m.failures)
        }
      }
      const handled = world.completedIds.size
      assert.isAtLeast(handled, world.published.length - deadById.size)
      assert.isAtLeast(world.acks, world.published.length)
      return world
    }).pipe(Effect.provide(stack(world)))
  }).pipe(
    Effect.provideService(References.MinimumLogLevel, "None"),
    Effect.provide(TestClock.layer())
  )

describe("consumer model: publish / restart / fail / nack interleavings", () => {
  it("never loses a message and never acks before completion or dead-lettering", async () => {
    await fc.assert(
      fc.asyncProperty(configArb, async (config) => {
        await Effect.runPromise(runModel(config))
      }),
      { numRuns: 60 }
    )
  })

  it.effect("a fixed nasty interleaving: restarts mid-retry, a rogue member nacking, drain timeouts", () =>
    Effect.gen(function*() {
      const world = yield* runModel({
        concurrency: 2,
        ordering: "key",
        drainTimeout: 10,
        ops: [
          {
            _tag: "publish",
            messages: [
              { key: "k1", behaviour: "transient", failures: 3, latency: 30 },
              { key: "k1", behaviour: "ok", failures: 1, latency: 50 },
              { key: "k2", behaviour: "permanent", failures: 1, latency: 5 },
              { key: "k3", behaviour: "defect", failures: 1, latency: 0 }
            ]
          },
          { _tag: "start" },
          { _tag: "advance", millis: 45 },
          { _tag: "restart" },
          { _tag: "rogue", take: 3, settle: "nack", nackDelay: 40 },
          { _tag: "advance", millis: 10 },
          { _tag: "rogue", take: 2, settle: "abandon", nackDelay: 0 },
          { _tag: "publish", messages: [{ key: "k2", behaviour: "ok", failures: 1, latency: 70 }] },
          { _tag: "restart" },
          { _tag: "advance", millis: 100 },
          { _tag: "stop" }
        ]
      })
      assert.strictEqual(world.published.length, 5)
      // The transient message needed more attempts than its failure budget.
      assert.isAtLeast(world.attempts.get("m0")!, 4)
    }))
})
