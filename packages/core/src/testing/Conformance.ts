/**
 * The shared conformance suite: the definition of correct behaviour for a Switchyard broker. Every broker
 * (the in-memory one included) runs it against its real server; third-party adapters can run it too.
 *
 * Modelled on Watermill's universal pub/sub tests, gated by capability flags, plus the consumer-runtime
 * guarantees (dead letters on decode failure and exhausted retries, graceful drain, idempotency). Each
 * case uses fresh destinations; reads end on an expected count or an idle timeout that re-arms on every
 * message; duplicates are tolerated (deduplicated by id) unless the broker claims exactly-once.
 *
 * @since 0.1.0
 */
import { assert, describe, layer } from "@effect/vitest"
import type { Layer } from "effect"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Ref, Schedule, Schema, Stream } from "effect"
import * as Scope_ from "effect/Scope"
import type { RawDelivery } from "../Broker.ts"
import { Broker } from "../Broker.ts"
import type { Capabilities } from "../Capabilities.ts"
import * as Codec from "../Codec.ts"
import * as Consumer from "../Consumer.ts"
import * as ConformanceCodec from "./internal/codec.ts"
import { type Envelope, type OutgoingMessage, outgoing } from "../Envelope.ts"
import * as H from "../Headers.ts"
import * as Publisher from "../Publisher.ts"
import * as Switchyard from "../Switchyard.ts"
import * as Topic from "../Topic.ts"
import * as DeadLetterOps from "./internal/deadLetterOps.ts"
import * as TypedPaths from "./internal/typedPaths.ts"
import { uniqueName } from "./TestKit.ts"

/**
 * How to run the suite for one broker.
 *
 * @category models
 * @since 0.1.0
 */
export interface Config {
  /** Shown in test names. */
  readonly name: string
  /** The broker under test; built once for the whole suite. */
  readonly layer: Layer.Layer<Broker, unknown>
  /** What the broker really promises: cases it cannot pass are not run, the others must pass. */
  readonly capabilities: Capabilities
  /** Prepares a fresh destination (for example creates a Kafka topic with several partitions). */
  readonly provision?: ((destination: string) => Effect.Effect<void, unknown, Broker>) | undefined
  /** Restarts the broker (stop, then start); enables the broker-restart case. */
  readonly restart?: Effect.Effect<void, unknown> | undefined
  /** Multiplies idle timeouts, for slow brokers (default 1). */
  readonly timeScale?: number | undefined
  /** Messages in the bulk cases (default 300). */
  readonly messageCount?: number | undefined
  /** Messages in the broker-restart case (default 10,000). */
  readonly restartMessageCount?: number | undefined
}

const Payload = Schema.Struct({ n: Schema.Number, key: Schema.String })
type Payload = typeof Payload.Type

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const makeMessage = (n: number, key: string, extra?: Partial<OutgoingMessage>): OutgoingMessage =>
  outgoing(extra?.payload ?? encoder.encode(JSON.stringify({ n, key })), {
    id: `m-${n}-${Math.random().toString(36).slice(2, 10)}`,
    key,
    contentType: "application/json",
    ...extra
  })

const decodePayload = Schema.decodeUnknownSync(Schema.fromJsonString(Payload))
/** The test payload of a message (a malformed one fails the test with the Schema's message). */
const payloadOf = (message: Pick<Envelope, "payload">): Payload => decodePayload(decoder.decode(message.payload))

/**
 * Runs the suite in the current vitest file.
 *
 * @example
 * ```ts
 * import { Conformance } from "@switchyard/core/testing"
 * import { MemoryBroker } from "@switchyard/core"
 * Conformance.suite({ name: "memory", layer: MemoryBroker.layer(), capabilities: MemoryBroker.capabilities })
 * ```
 * @category running
 * @since 0.1.0
 */
export const suite = (config: Config): void => {
  const caps = config.capabilities
  const scale = config.timeScale ?? 1
  const count = config.messageCount ?? 300
  const idle = Duration.millis(1500 * scale)
  const tolerateDuplicates = !caps.exactlyOnce

  const fresh = Effect.fn("Conformance.fresh")(function*(label: string) {
    const name = uniqueName(`conf.${label}`)
    if (config.provision !== undefined) {
      yield* config.provision(name).pipe(Effect.orDie)
      yield* config.provision(`${name}.dlq`).pipe(Effect.orDie)
    }
    return name
  })

  const publish = (destination: string, messages: ReadonlyArray<OutgoingMessage>) =>
    Broker.use((broker) => broker.publish(destination, messages))

  const open = (destination: string, group: string, prefetch = 64) =>
    Broker.use((broker) => broker.subscribe(destination, { group, prefetch, startFrom: "earliest" }))

  /**
   * Reads and acks until `expected` distinct ids arrived, or nothing arrived for `idleFor`.
   */
  const readUntil = Effect.fn("Conformance.readUntil")(function*(
    deliveries: Stream.Stream<RawDelivery, unknown>,
    expected: number,
    options?: {
      readonly idleFor?: Duration.Input
      readonly settle?: (d: RawDelivery) => Effect.Effect<void, unknown>
      readonly done?: () => boolean
    }
  ) {
    const received: Array<Envelope> = []
    const ids = new Set<string>()
    const settle = options?.settle ?? ((d: RawDelivery) => d.ack)
    yield* deliveries.pipe(
      Stream.timeout(options?.idleFor ?? idle),
      Stream.mapEffect((delivery) =>
        Effect.map(settle(delivery), () => {
          received.push(delivery.envelope)
          ids.add(delivery.envelope.id)
          return options?.done?.() ?? ids.size >= expected
        })
      ),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return { received, ids }
  })

  const assertAllReceived = (sent: ReadonlyArray<OutgoingMessage>, ids: ReadonlySet<string>, received: number) => {
    const missing = sent.filter((m) => !ids.has(m.id))
    assert.strictEqual(missing.length, 0, `missing ${missing.length} of ${sent.length} messages`)
    if (!tolerateDuplicates) assert.strictEqual(received, sent.length, "duplicates on an exactly-once broker")
  }

  const stack = Switchyard.on(config.layer)

  describe(`conformance: ${config.name}`, () => {
    layer(stack, { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
      ConformanceCodec.cases(it, { fresh, idle })
      it.effect("publish-subscribe round trip keeps id, key, headers, timestamp, content type, correlation and causation", () =>
        Effect.gen(function*() {
          const destination = yield* fresh("roundtrip")
          const sub = yield* open(destination, "g1")
          const sent = Array.from({ length: 20 }, (_, n) =>
            makeMessage(n, `k${n % 3}`, {
              headers: { "x-test": `value-${n}`, "x-unicode": "žluťoučký kůň" },
              correlationId: `corr-${n}`,
              causationId: `cause-${n}`,
              timestamp: 1_700_000_000_000 + n
            }))
          const receipts = yield* publish(destination, sent)
          assert.strictEqual(receipts.length, sent.length)
          assert.deepStrictEqual(receipts.map((r) => r.id), sent.map((m) => m.id))
          const { received } = yield* readUntil(sub.deliveries, sent.length)
          const byId = new Map(received.map((e) => [e.id, e]))
          for (const message of sent) {
            const envelope = byId.get(message.id)
            assert.isDefined(envelope, `message ${message.id} not received`)
            if (envelope === undefined) continue
            assert.strictEqual(envelope.key, message.key)
            assert.strictEqual(envelope.headers["x-test"], message.headers["x-test"])
            assert.strictEqual(envelope.headers["x-unicode"], message.headers["x-unicode"])
            assert.strictEqual(envelope.timestamp, message.timestamp)
            assert.strictEqual(envelope.contentType, message.contentType)
            assert.strictEqual(envelope.correlationId, message.correlationId)
            assert.strictEqual(envelope.causationId, message.causationId)
            assert.deepStrictEqual(payloadOf(envelope), payloadOf(message))
            assert.strictEqual(envelope.attempt, 1)
            assert.strictEqual(envelope.coordinates.destination, destination)
          }
        }))

      it.effect("typed publisher and codec: values come back decoded, encode failures are typed and send nothing", () =>
        Effect.gen(function*() {
          const destination = yield* fresh("typed")
          const topic = Topic.make(destination, Payload, { key: (p) => p.key })
          const sub = yield* open(destination, "g1")
          yield* Publisher.publishAll(topic, [{ n: 1, key: "a" }, { n: 2, key: "b" }])
          const bad = yield* Publisher.publish(Topic.withCodec(destination, Codec.json(Schema.Struct({ n: Schema.Int }))), {
            n: 1.5
          }).pipe(Effect.flip)
          assert.strictEqual(bad._tag, "EncodeError")
          const { received } = yield* readUntil(sub.deliveries, 2)
          assert.deepStrictEqual(received.map(payloadOf).map((p) => p.n).sort(), [1, 2])
          assert.deepStrictEqual(received.map((e) => e.key).sort(), ["a", "b"])
        }))

      it.effect("many parallel publishers and several subscriber instances of one group lose nothing", () =>
        Effect.gen(function*() {
          const destination = yield* fresh("parallel")
          const members = caps.consumerGroups ? 3 : 1
          // Everything is published before anyone reads: an at-most-once broker without flow control (core
          // NATS) holds at most `prefetch` per subscription and drops the rest, so give it room for all.
          const subs = yield* Effect.forEach(
            Array.from({ length: members }),
            () => open(destination, "workers", caps.atMostOnce ? count : 64)
          )
          const publishers = 8
          const sent = Array.from({ length: count }, (_, n) => makeMessage(n, `k${n % 17}`))
          const batches = Array.from({ length: publishers }, (_, p) => sent.filter((_, n) => n % publishers === p))
          yield* Effect.forEach(batches, (batch) => Effect.forEach(batch, (m) => publish(destination, [m]), { concurrency: 4 }), {
            concurrency: "unbounded"
          })
          const all = new Set<string>()
          let total = 0
          const perMember = yield* Effect.forEach(subs, (sub) =>
            readUntil(sub.deliveries, count, { idleFor: idle }).pipe(
              Effect.tap(({ ids, received }) =>
                Effect.sync(() => {
                  for (const id of ids) all.add(id)
                  total += received.length
                })
              )
            ), { concurrency: "unbounded" })
          assertAllReceived(sent, all, total)
          if (caps.consumerGroups && members > 1) {
            assert.isTrue(perMember.filter((r) => r.ids.size > 0).length >= 2, "work was not shared among the group's members")
          }
        }))

      it.effect("many destinations at once stay isolated", () =>
        Effect.gen(function*() {
          const destinations = yield* Effect.forEach(Array.from({ length: 5 }), (_, i) => fresh(`iso${i}`))
          const subs = yield* Effect.forEach(destinations, (d) => open(d, "g1"))
          const sent = destinations.map((_, i) => Array.from({ length: 20 }, (_, n) => makeMessage(n, `k-${i}`)))
          yield* Effect.forEach(destinations, (d, i) => publish(d, sent[i]!), { concurrency: "unbounded" })
          yield* Effect.forEach(subs, (sub, i) =>
            Effect.gen(function*() {
              const { ids, received } = yield* readUntil(sub.deliveries, 1_000_000, { idleFor: Duration.millis(1000 * scale) })
              assertAllReceived(sent[i]!, ids, received.length)
              const foreign = received.filter((e) => !sent[i]!.some((m) => m.id === e.id))
              assert.strictEqual(foreign.length, 0, `destination ${i} got ${foreign.length} foreign messages`)
            }), { concurrency: "unbounded" })
        }))

      if (caps.consumerGroups) {
        it.effect("two consumer groups each receive every message", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("fanout")
            const a = yield* open(destination, "group-a")
            const b = yield* open(destination, "group-b")
            const sent = Array.from({ length: 50 }, (_, n) => makeMessage(n, `k${n % 5}`))
            yield* publish(destination, sent)
            const [ra, rb] = yield* Effect.all([readUntil(a.deliveries, sent.length), readUntil(b.deliveries, sent.length)], {
              concurrency: 2
            })
            assertAllReceived(sent, ra.ids, ra.received.length)
            assertAllReceived(sent, rb.ids, rb.received.length)
          }))
      }

      if (caps.redelivery) {
        it.effect("nacked messages are redelivered with a growing attempt count", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("nack")
            const sub = yield* open(destination, "g1")
            const sent = Array.from({ length: 10 }, (_, n) => makeMessage(n, `k${n}`))
            yield* publish(destination, sent)
            const attempts = new Map<string, Array<number>>()
            yield* readUntil(sub.deliveries, sent.length, {
              idleFor: Duration.millis(5000 * scale),
              settle: (d) => {
                const seen = attempts.get(d.envelope.id) ?? []
                seen.push(d.envelope.attempt)
                attempts.set(d.envelope.id, seen)
                return seen.length === 1 ? d.nack() : d.ack
              },
              done: () => [...attempts.values()].filter((a) => a.length >= 2).length >= sent.length
            })
            for (const message of sent) {
              const seen = attempts.get(message.id) ?? []
              assert.isAtLeast(seen.length, 2, `message ${message.id} was not redelivered`)
              assert.isAbove(seen[1]!, seen[0]!, "attempt did not grow on redelivery")
            }
          }))

        it.effect("continue after errors: subscribers nack many messages, a final reader still gets all", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("errors")
            const sub = yield* open(destination, "g1")
            const sent = Array.from({ length: 60 }, (_, n) => makeMessage(n, `k${n % 7}`))
            yield* publish(destination, sent)
            const handled = new Set<string>()
            const nacked = new Set<string>()
            yield* readUntil(sub.deliveries, 1_000_000, {
              idleFor: Duration.millis(2500 * scale),
              settle: (d) => {
                if (!nacked.has(d.envelope.id) && payloadOf(d.envelope).n % 3 === 0) {
                  nacked.add(d.envelope.id)
                  return d.nack()
                }
                handled.add(d.envelope.id)
                return d.ack
              }
            })
            assert.strictEqual(nacked.size, 20)
            const missing = sent.filter((m) => !handled.has(m.id))
            assert.strictEqual(missing.length, 0, `${missing.length} messages never came back after nacks`)
          }))
      }

      if (caps.redeliveryDelay) {
        it.effect("nack with a delay postpones the redelivery", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("delay")
            const sub = yield* open(destination, "g1")
            yield* publish(destination, [makeMessage(1, "k")])
            const times: Array<number> = []
            yield* readUntil(sub.deliveries, 1_000_000, {
              idleFor: Duration.millis(5000 * scale),
              settle: (d) =>
                Effect.flatMap(Clock.currentTimeMillis, (now) => {
                  times.push(now)
                  return times.length === 1 ? d.nack({ delay: "1 second" }) : d.ack
                }),
              done: () => times.length >= 2
            })
            assert.isAtLeast(times.length, 2)
            assert.isAtLeast(times[1]! - times[0]!, 900, "redelivered before the requested delay")
          }))
      }

      if (caps.orderedDelivery && caps.redelivery) {
        it.effect("no-ack flow control: with prefetch 1 nothing more arrives until the delivery is acked", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("noack")
            const sub = yield* open(destination, "g1", 1)
            const sent = Array.from({ length: 3 }, (_, n) => makeMessage(n, "same-key"))
            yield* publish(destination, sent)
            const taken = yield* Ref.make<Array<RawDelivery>>([])
            const fiber = yield* sub.deliveries.pipe(
              Stream.runForEach((d) => Ref.update(taken, (all) => [...all, d])),
              Effect.forkChild
            )
            yield* Effect.sleep(Duration.millis(700 * scale))
            const first = yield* Ref.get(taken)
            assert.strictEqual(first.length, 1, "a second message arrived while the first was unacked")
            yield* first[0]!.ack
            yield* Effect.sleep(Duration.millis(700 * scale))
            const second = yield* Ref.get(taken)
            assert.strictEqual(second.length, 2, "the next message did not arrive after the ack")
            assert.strictEqual(second[1]!.envelope.id, sent[1]!.id)
            yield* second[1]!.ack
            yield* Fiber.interrupt(fiber)
          }))
      }

      if (caps.persistent && caps.redelivery) {
        it.effect("continue after subscriber close: open, read a batch, close (twice), repeat; the union is complete", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("reopen")
            const first = yield* Scope_.make()
            yield* open(destination, "g1", 10).pipe(Scope_.provide(first))
            yield* Scope_.close(first, Exit.void)
            const sent = Array.from({ length: 100 }, (_, n) => makeMessage(n, `k${n % 4}`))
            yield* publish(destination, sent)
            const ids = new Set<string>()
            // Every delivery read (and acked), duplicates included; unread prefetched ones are not counted.
            let total = 0
            for (let round = 0; round < 30 && ids.size < sent.length; round++) {
              const scope = yield* Scope_.make()
              const sub = yield* open(destination, "g1", 10).pipe(Scope_.provide(scope))
              const batch = yield* readUntil(sub.deliveries.pipe(Stream.take(15)), 15, { idleFor: Duration.millis(1500 * scale) })
              for (const id of batch.ids) ids.add(id)
              total += batch.received.length
              yield* Scope_.close(scope, Exit.void)
              yield* Scope_.close(scope, Exit.void)
            }
            assertAllReceived(sent, ids, total)
          }))

        it.effect("cancelling a subscription mid-stream stops delivery and loses nothing; concurrent close does not wedge the group", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("cancel")
            const warm = yield* Scope_.make()
            yield* open(destination, "g1").pipe(Scope_.provide(warm))
            const sent = Array.from({ length: 80 }, (_, n) => makeMessage(n, `k${n % 8}`))
            yield* publish(destination, sent)
            yield* Scope_.close(warm, Exit.void)
            const handled = new Set<string>()
            // Every acked delivery, duplicates included (deliberately unacked ones are given back, not received).
            let acked = 0
            const handle = (d: RawDelivery) =>
              Effect.tap(d.ack, () =>
                Effect.sync(() => {
                  acked++
                  handled.add(d.envelope.id)
                }))
            // Several subscribers racing: each takes a few messages, acks only some, and is closed concurrently.
            yield* Effect.forEach(Array.from({ length: 4 }), () =>
              Effect.scoped(
                Effect.gen(function*() {
                  const sub = yield* open(destination, "g1", 8)
                  yield* sub.deliveries.pipe(
                    Stream.take(6),
                    Stream.mapEffect((d, i) => i % 2 === 0 ? handle(d) : Effect.void),
                    Stream.timeout(Duration.millis(800 * scale)),
                    Stream.runDrain
                  )
                })
              ), { concurrency: "unbounded" })
            const final = yield* open(destination, "g1")
            yield* readUntil(final.deliveries, sent.length, {
              settle: handle,
              done: () => sent.every((m) => handled.has(m.id))
            })
            assertAllReceived(sent, handled, acked)
          }))
      }

      if (caps.perKeyOrder) {
        it.effect("order per key holds across subscriber instances of a group", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("order")
            const members = caps.consumerGroups ? 2 : 1
            const subs = yield* Effect.forEach(Array.from({ length: members }), () => open(destination, "g1"))
            const keys = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
            const sent = Array.from({ length: 120 }, (_, n) => makeMessage(n, keys[n % keys.length]!))
            yield* publish(destination, sent)
            const results = yield* Effect.forEach(subs, (sub) => readUntil(sub.deliveries, sent.length), {
              concurrency: "unbounded"
            })
            const all = new Set(results.flatMap((r) => [...r.ids]))
            assertAllReceived(sent, all, results.reduce((s, r) => s + r.received.length, 0))
            for (const { received } of results) {
              const lastByKey = new Map<string, number>()
              for (const envelope of received) {
                const { n, key } = payloadOf(envelope)
                const last = lastByKey.get(key)
                if (last !== undefined) assert.isAbove(n, last, `key ${key}: ${n} delivered after ${last}`)
                lastByKey.set(key, n)
              }
            }
          }))
      }

      if (caps.replayForNewSubscribers) {
        it.effect("a new consumer group replays messages published before it subscribed", () =>
          Effect.gen(function*() {
            const destination = yield* fresh("replay")
            const sent = Array.from({ length: 30 }, (_, n) => makeMessage(n, `k${n % 3}`))
            yield* publish(destination, sent)
            const late = yield* open(destination, "late-group")
            const { ids, received } = yield* readUntil(late.deliveries, sent.length)
            assertAllReceived(sent, ids, received.length)
          }))
      }

      if (config.restart !== undefined && caps.persistent) {
        const restart = config.restart
        it.effect("broker restarted twice while messages flow from parallel publishers: every confirmed message is consumed", () =>
          Effect.gen(function*() {
            const total = config.restartMessageCount ?? 10_000
            const destination = yield* fresh("restart")
            const sub = yield* open(destination, "g1", 500)
            const confirmed = new Map<string, string>()
            const received = new Set<string>()
            const reader = yield* sub.deliveries.pipe(
              Stream.runForEach((d) => Effect.andThen(d.ack.pipe(Effect.ignore), Effect.sync(() => received.add(d.envelope.id)))),
              Effect.forkChild
            )
            const publishers = 10
            const publishing = yield* Effect.forEach(Array.from({ length: publishers }), (_, p) =>
              Effect.forEach(Array.from({ length: total / publishers }, (_, i) => i), (i) => {
                const message = makeMessage(p * total + i, `k${i % 16}`)
                return publish(destination, [message]).pipe(
                  Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 300 }))),
                  Effect.tap((receipts) => Effect.sync(() => confirmed.set(message.id, JSON.stringify(receipts[0]?.coordinates)))),
                  Effect.ignore
                )
              }), { concurrency: "unbounded" }).pipe(Effect.forkChild)
            yield* Effect.sleep(Duration.millis(300))
            yield* restart
            yield* Effect.sleep(Duration.millis(500))
            yield* restart
            yield* Fiber.join(publishing)
            yield* Effect.gen(function*() {
              while ([...confirmed.keys()].some((id) => !received.has(id))) yield* Effect.sleep("250 millis")
            }).pipe(Effect.timeout(Duration.seconds(120 * scale)), Effect.ignore)
            yield* Fiber.interrupt(reader)
            assert.isAtLeast(confirmed.size, total * 0.5, "too few publishes were confirmed")
            const lost = [...confirmed].filter(([id]) => !received.has(id))
            const sharing = (at: string) => [...confirmed].filter(([, other]) => other === at).map(([id]) => id)
            assert.strictEqual(
              lost.length,
              0,
              `${lost.length} confirmed messages were never consumed, e.g. ${
                lost.slice(0, 5).map(([id, at]) => `${id} at ${at} (receipts at that position: ${sharing(at).join(", ")})`)
                  .join("; ")
              }`
            )
          }), { timeout: 300_000 })
      }

      // ---- consumer runtime guarantees -------------------------------------------------------------

      const consumeUntil = Effect.fn("Conformance.consumeUntil")(function*<A, E>(
        topic: Topic.Topic<A>,
        handler: Consumer.Handler<A, E, never>,
        options: Consumer.Options<E>,
        until: Effect.Effect<boolean>
      ) {
        const fiber = yield* Consumer.run(topic, handler, options).pipe(Effect.forkChild)
        yield* until.pipe(
          Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (done) => done }),
          Effect.timeout(Duration.seconds(30 * scale))
        )
        const exit = fiber.pollUnsafe()
        assert.isUndefined(exit, "the consumer stopped by itself")
        yield* Fiber.interrupt(fiber)
      })

      const readDeadLetters = (destination: string, expected: number) =>
        Effect.scoped(Effect.flatMap(open(`${destination}.dlq`, "dlq-reader"), (sub) => readUntil(sub.deliveries, expected)))

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
            yield* consumeUntil(topic, (p) => Effect.sync(() => handled.add(p.n)), { group: "runtime" }, Effect.sync(() => handled.size >= 10))
            assert.deepStrictEqual([...handled].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
            const dead = yield* readDeadLetters(destination, 3)
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
            yield* consumeUntil<Payload, Flaky>(
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
              Effect.sync(() => handled.size >= 10)
            )
            assert.strictEqual(calls.get(3), 3, "retried twice, then gave up")
            assert.strictEqual(calls.get(7), 1, "defects are not retried")
            assert.isTrue(handled.has(9), "a transient failure recovered by retry")
            const dead = yield* readDeadLetters(destination, 2)
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

      TypedPaths.register(it, { capabilities: caps, scale, idle, fresh, publish, open, readDeadLetters })
      DeadLetterOps.register(it, { capabilities: caps, scale, idle, fresh, open })

      it.effect("closing a subscription releases it: a later subscriber of the group gets what was not acked", () =>
        Effect.gen(function*() {
          const destination = yield* fresh("release")
          const scope = yield* Scope_.make()
          const sub = yield* open(destination, "g1").pipe(Scope_.provide(scope))
          const sent = Array.from({ length: 5 }, (_, n) => makeMessage(n, "k"))
          yield* publish(destination, sent)
          const got = yield* sub.deliveries.pipe(Stream.take(1), Stream.runCollect)
          assert.strictEqual(got.length, 1)
          yield* Scope_.close(scope, Exit.void)
          if (caps.persistent && caps.redelivery) {
            const next = yield* open(destination, "g1")
            const { ids, received } = yield* readUntil(next.deliveries, sent.length)
            assertAllReceived(sent, ids, received.length)
          }
        }))
    })
  })
}

