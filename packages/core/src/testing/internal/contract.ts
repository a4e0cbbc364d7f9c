/**
 * The broker contract cases: round trips, groups, redelivery, flow control, closing and cancelling
 * subscriptions, per-key order, replay, broker restarts. Registered by `Conformance.suite`, gated by the
 * broker's capability flags.
 */
import { assert, type Vitest } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Ref, Schedule, Schema, Stream } from "effect"
import * as Scope_ from "effect/Scope"
import type { Broker, RawDelivery } from "../../Broker.ts"
import * as Codec from "../../Codec.ts"
import * as Publisher from "../../Publisher.ts"
import type * as Subscriber from "../../Subscriber.ts"
import * as Topic from "../../Topic.ts"
import { type Harness, Payload, makeMessage, payloadOf } from "./harness.ts"

type It = Vitest.MethodsNonLive<Broker | Publisher.Publisher | Subscriber.Subscriber>

/** Registers the broker contract cases. */
export const register = (it: It, harness: Harness): void => {
  const { capabilities: caps, config, scale, count, idle, fresh, publish, open, readUntil, assertAllReceived } = harness
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
}

/** Registers the last case: a closed subscription gives back what it did not ack. */
export const registerRelease = (it: It, harness: Harness): void => {
  const { capabilities: caps, fresh, publish, open, readUntil, assertAllReceived } = harness
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
}
