import { assert, describe, layer } from "@effect/vitest"
import { Broker, Consumer, Headers, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Deferred, Effect, Fiber, Metric, Schema, Stream } from "effect"
import { NatsBroker, NatsTopology } from "../src/index.ts"
import { drainFor, message, servers, subscribeOptions, take, text, unique } from "./helpers.ts"
import { eventually } from "./raw.ts"

const live = NatsBroker.layer({
  connection: { servers, name: "switchyard-nats-test" },
  defaultStream: { storage: "memory", maxAge: "15 minutes" },
  consumer: { ackWait: "2 seconds", inactiveThreshold: "5 minutes" }
})

describe("JetStream broker", () => {
  layer(live, { timeout: "30 seconds", excludeTestServices: true })((it) => {
    it.effect("round-trips the envelope and reports coordinates", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.rt")
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        const sent = [
          message("one", {
            key: "k-1",
            headers: { "x-custom": "v", "Mixed-Case": "Keep", "x-multi": "line 1\r\nline 2", "x-marker": "=?sy-b64?x" },
            correlationId: "corr-1",
            causationId: "cause-1",
            timestamp: 1_700_000_000_123,
            contentType: "application/json"
          }),
          message("two"),
          message("three", { key: "" })
        ]
        const receipts = yield* broker.publish(destination, sent)
        assert.deepStrictEqual(receipts.map((r) => r.id), sent.map((m) => m.id))
        assert.deepStrictEqual(receipts.map((r) => r.coordinates.sequence), [1, 2, 3])
        const got = yield* take(sub, 3)
        assert.deepStrictEqual(got.map(text), ["one", "two", "three"])
        for (let i = 0; i < sent.length; i++) {
          const { attempt, coordinates, idSource, keyBytes, ...rest } = got[i]!.envelope
          assert.strictEqual(idSource, "message")
          assert.isUndefined(keyBytes)
          assert.deepStrictEqual({ ...rest, payload: Array.from(rest.payload) }, {
            ...sent[i]!,
            payload: Array.from(sent[i]!.payload)
          })
          assert.strictEqual(attempt, 1)
          assert.strictEqual(coordinates.destination, destination)
          assert.strictEqual(coordinates.sequence, i + 1)
        }
      }))

    it.effect("publish tells each PubAck to onConfirmed as it arrives: every index once, with its stream sequence, before the call resolves", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.confirms")
        const messages = Array.from({ length: 1500 }, (_, i) => message(`c-${i}`))
        const told = new Map<number, { readonly id: string; readonly sequence: number | undefined }>()
        const receipts = yield* broker.publish(destination, messages, (index, receipt) => {
          assert.isFalse(told.has(index), `index ${index} told twice`)
          told.set(index, { id: receipt.id, sequence: receipt.coordinates.sequence })
        })
        assert.strictEqual(told.size, messages.length, "one PubAck per message, all before the call resolved")
        receipts.forEach((receipt, i) =>
          assert.deepStrictEqual(told.get(i), { id: receipt.id, sequence: receipt.coordinates.sequence }, `message ${i}`)
        )
        assert.deepStrictEqual(receipts.map((r) => r.coordinates.sequence), messages.map((_, i) => i + 1))
      }))

    it.effect("a header name nats.js refuses fails the publish with a typed PublishError (Invalid), before anything is sent", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.badheader")
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        const error = yield* Effect.flip(broker.publish(destination, [message("ok"), message("bad", { headers: { "bad name": "v" } })]))
        assert.strictEqual(error._tag, "PublishError")
        assert.strictEqual(error.reason._tag, "Invalid")
        assert.include(error.reason.message, "not a valid character in a header name")
        // The window is refused as a whole, before its first publish: the stream holds nothing of it.
        yield* broker.publish(destination, [message("after")])
        assert.deepStrictEqual((yield* take(sub, 1)).map(text), ["after"])
      }))

    it.effect("deduplicates a republished message id (Nats-Msg-Id)", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const js = yield* NatsTopology.NatsTopology
        const destination = unique("sy.dedup")
        const m = message("once")
        yield* broker.publish(destination, [m])
        yield* broker.publish(destination, [m, message("other")])
        const stream = yield* js.streamFor(destination)
        const info = yield* Effect.promise(() => js.manager.streams.info(stream))
        assert.strictEqual(info.state.messages, 2)
      }))

    it.effect("a stream deleted behind the adapter's back is provisioned again on the next publish", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const js = yield* NatsTopology.NatsTopology
        const destination = unique("sy.gone")
        yield* broker.publish(destination, [message("before")])
        const stream = yield* js.streamFor(destination)
        yield* Effect.promise(() => js.manager.streams.delete(stream))
        const [receipt] = yield* broker.publish(destination, [message("after")])
        assert.strictEqual(receipt!.coordinates.sequence, 1)
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        assert.deepStrictEqual((yield* take(sub, 1)).map(text), ["after"])
        // and the same for a subscription
        yield* Effect.promise(() => js.manager.streams.delete(stream))
        const again = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        yield* broker.publish(destination, [message("again")])
        assert.deepStrictEqual((yield* take(again, 1)).map(text), ["again"])
      }))

    it.effect("startFrom earliest replays, latest does not", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.start")
        yield* broker.publish(destination, [message("old-1"), message("old-2")])
        const early = yield* broker.subscribe(destination, subscribeOptions(unique("early")))
        const late = yield* broker.subscribe(destination, subscribeOptions(unique("late"), { startFrom: "latest" }))
        yield* broker.publish(destination, [message("new")])
        assert.deepStrictEqual((yield* take(early, 3)).map(text), ["old-1", "old-2", "new"])
        assert.deepStrictEqual((yield* take(late, 1)).map(text), ["new"])
        assert.deepStrictEqual((yield* drainFor(late, "300 millis")).map(text), [])
      }))

    it.effect("nack redelivers with a growing attempt; settlement is idempotent", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.nack")
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        yield* broker.publish(destination, [message("retry-me")])
        const [first] = yield* take(sub, 1, { ack: false })
        assert.strictEqual(first!.envelope.attempt, 1)
        yield* first!.nack()
        yield* first!.ack // ignored: only the first settlement counts
        yield* first!.nack()
        const [second] = yield* take(sub, 1, { ack: false })
        assert.strictEqual(text(second!), "retry-me")
        assert.strictEqual(second!.envelope.attempt, 2)
        const started = Date.now()
        yield* second!.nack({ delay: "700 millis" })
        const [third] = yield* take(sub, 1)
        assert.isAtLeast(Date.now() - started, 600)
        assert.strictEqual(third!.envelope.attempt, 3)
        assert.deepStrictEqual((yield* drainFor(sub, "300 millis")).length, 0)
      }))

    it.effect("members of a group compete, groups each get everything", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.groups")
        const groupA = unique("a")
        const a1 = yield* broker.subscribe(destination, subscribeOptions(groupA, { prefetch: 10 }))
        const a2 = yield* broker.subscribe(destination, subscribeOptions(groupA, { prefetch: 10 }))
        const b = yield* broker.subscribe(destination, subscribeOptions(unique("b")))
        const n = 200
        yield* broker.publish(destination, Array.from({ length: n }, (_, i) => message(`m${i}`)))
        const all = yield* take(b, n)
        assert.strictEqual(new Set(all.map(text)).size, n)
        const seen: Array<string> = []
        const reader = (s: Broker.Subscription) =>
          s.deliveries.pipe(Stream.runForEach((d) => Effect.sync(() => seen.push(text(d))).pipe(Effect.andThen(d.ack))))
        yield* Effect.raceFirst(
          Effect.all([reader(a1), reader(a2)], { concurrency: 2 }),
          Effect.sleep("100 millis").pipe(Effect.repeat({ until: () => seen.length >= n }), Effect.andThen(Effect.sleep("300 millis")))
        ).pipe(Effect.timeout("15 seconds"))
        assert.strictEqual(seen.length, n)
        assert.strictEqual(new Set(seen).size, n)
      }))

    it.effect("closing a subscription hands its unacked deliveries to the other member", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.close")
        const group = unique("g")
        yield* broker.publish(destination, [message("a"), message("b"), message("c")])
        yield* Effect.scoped(Effect.gen(function*() {
          const first = yield* broker.subscribe(destination, subscribeOptions(group))
          const got = yield* take(first, 3, { ack: false })
          assert.strictEqual(got.length, 3)
          yield* got[0]!.ack
        }))
        const second = yield* broker.subscribe(destination, subscribeOptions(group))
        // At-least-once: both unacked messages come back (duplicates tolerated), a never again.
        const seen = new Set<string>()
        const again = yield* second.deliveries.pipe(
          Stream.tap((d) => Effect.sync(() => seen.add(text(d))).pipe(Effect.andThen(d.ack))),
          Stream.takeUntil(() => seen.size >= 2),
          Stream.runCollect,
          Effect.timeout("6 seconds")
        )
        assert.deepStrictEqual([...seen].sort(), ["b", "c"])
        assert.isTrue(again.every((d) => d.envelope.attempt >= 2 || text(d) !== "a"))
      }))

    it.effect("stopping a member hands its buffered deliveries to another member at once, not after ack-wait", () =>
      Effect.gen(function*() {
        const destination = unique("sy.handback")
        const group = unique("g")
        const n = 20
        yield* Effect.gen(function*() {
          const broker = yield* Broker.Broker
          const other = yield* broker.subscribe(destination, subscribeOptions(group, { prefetch: n }))
          const seen = new Set<string>()
          yield* Effect.gen(function*() {
            const first = yield* broker.subscribe(destination, subscribeOptions(group, { prefetch: n }))
            yield* broker.publish(destination, Array.from({ length: n }, (_, i) => message(`m${i}`)))
            // The first member holds one delivery it started and the rest still buffered in its queue.
            const [started] = yield* take(first, 1, { ack: false })
            assert.isDefined(started)
          }).pipe(Effect.scoped)
          // ack_wait is 30 s: whatever the first member held must reach the other one well before.
          const got = yield* other.deliveries.pipe(
            Stream.tap((d) => Effect.sync(() => seen.add(text(d))).pipe(Effect.andThen(d.ack))),
            Stream.takeUntil(() => seen.size >= n),
            Stream.runDrain,
            Effect.timeout("10 seconds"),
            Effect.ignore,
            Effect.andThen(Effect.sync(() => seen.size))
          )
          assert.strictEqual(got, n)
        }).pipe(Effect.scoped, Effect.provide(NatsBroker.layer({
          connection: { servers },
          defaultStream: { storage: "memory", maxAge: "15 minutes" },
          consumer: { ackWait: "30 seconds" }
        })))
      }), 40_000)

    it.effect("a consumer stopped with deliveries buffered: another member of the group handles them at once, not after ack-wait", () =>
      Effect.gen(function*() {
        const destination = unique("sy.handback.consumer")
        const group = unique("g")
        const n = 20
        const topic = Topic.make(destination, Schema.Struct({ n: Schema.Number }))
        const handled = new Set<number>()
        const started = yield* Deferred.make<void>()
        yield* Effect.gen(function*() {
          yield* Publisher.publishAll(topic, Array.from({ length: n }, (_, i) => ({ n: i })))
          // The first member starts one handler that outlives the drain; the other deliveries wait in buffers.
          const first = yield* Consumer.run(topic, () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.never)), {
            group,
            prefetch: n,
            drainTimeout: "500 millis"
          }).pipe(Effect.forkChild)
          yield* Deferred.await(started)
          yield* Fiber.interrupt(first)
          const second = yield* Consumer.run(topic, ({ n }) => Effect.sync(() => handled.add(n)), { group, prefetch: n }).pipe(
            Effect.forkChild
          )
          // ack_wait is 30 s: everything must be handled well before it would expire.
          yield* Effect.sleep("100 millis").pipe(
            Effect.repeat({ until: () => handled.size >= n }),
            Effect.timeout("10 seconds"),
            Effect.ignore
          )
          yield* Fiber.interrupt(second)
          assert.strictEqual(handled.size, n)
        }).pipe(Effect.provide(Switchyard.on(NatsBroker.layer({
          connection: { servers },
          defaultStream: { storage: "memory", maxAge: "15 minutes" },
          consumer: { ackWait: "30 seconds" }
        }))))
      }), 40_000)

    it.effect("a member whose queue is smaller than the group's max_ack_pending hands the overflow back: counted, nothing lost", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.overflow")
        const group = unique("g")
        const small = yield* broker.subscribe(destination, subscribeOptions(group, { prefetch: 5 }))
        // Another member subscribes with a larger prefetch (raising the group's max_ack_pending to 200) and leaves:
        // the server may now send the first member more than its queue of 5 holds.
        yield* Effect.scoped(broker.subscribe(destination, subscribeOptions(group, { prefetch: 200 })))
        const n = 60
        yield* broker.publish(destination, Array.from({ length: n }, (_, i) => message(`m${i}`)))
        const overflowed = Metric.value(Metric.withAttributes(NatsBroker.overflowedDeliveries, {
          "messaging.destination.name": destination,
          "messaging.consumer.group.name": group
        })).pipe(Effect.map((state) => state.count))
        assert.isAbove(yield* eventually(overflowed, (count) => count > 0, "10 seconds"), 0)
        // Everything handed back is redelivered: every message arrives and is acked.
        const seen = new Set<string>()
        yield* small.deliveries.pipe(
          Stream.tap((d) => Effect.sync(() => seen.add(text(d))).pipe(Effect.andThen(d.ack))),
          Stream.takeUntil(() => seen.size >= n),
          Stream.runDrain,
          Effect.timeout("20 seconds"),
          Effect.ignore
        )
        assert.strictEqual(seen.size, n)
        assert.deepStrictEqual((yield* drainFor(small, "500 millis")).length, 0)
      }), 40_000)

    it.effect("a handler slower than ack-wait is not redelivered while working", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.slow")
        const group = unique("g")
        const worker = yield* broker.subscribe(destination, subscribeOptions(group))
        const other = yield* broker.subscribe(destination, subscribeOptions(group))
        yield* broker.publish(destination, [message("slow")])
        // Whoever got it holds it unacked for 3 × ack-wait (2 s); the other member must see nothing.
        const [held, holder] = yield* Effect.raceFirst(
          take(worker, 1, { ack: false }).pipe(Effect.map((d) => [d[0]!, other] as const)),
          take(other, 1, { ack: false }).pipe(Effect.map((d) => [d[0]!, worker] as const))
        )
        const duplicates = yield* drainFor(holder, "6 seconds")
        assert.strictEqual(duplicates.length, 0)
        yield* held.ack
        assert.strictEqual(held.envelope.attempt, 1)
      }), 20_000)

    it.effect("max_deliver bounds redeliveries (plus the one that carries the limit), term stops them", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.poison")
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        yield* broker.publish(destination, [message("poison"), message("terminal")])
        const seen: Array<string> = []
        yield* sub.deliveries.pipe(
          Stream.tap((d) =>
            Effect.sync(() => seen.push(`${text(d)}#${d.envelope.attempt}/${d.deliveryLimit}`)).pipe(
              Effect.andThen(
                text(d) === "terminal" && NatsBroker.isJetStreamDelivery(d) ? d.term("unparseable") : d.nack()
              )
            )
          ),
          Stream.interruptWhen(Effect.sleep("2 seconds")),
          Stream.runDrain
        )
        assert.deepStrictEqual(seen.filter((s) => s.startsWith("terminal")), ["terminal#1/3"])
        // Three deliveries may run a handler; the server sends a fourth, past the limit, for the Consumer to
        // dead-letter, and then gives up.
        assert.deepStrictEqual(seen.filter((s) => s.startsWith("poison")), [
          "poison#1/3",
          "poison#2/3",
          "poison#3/3",
          "poison#4/3"
        ])
      }).pipe(Effect.provide(NatsBroker.layer({
        connection: { servers },
        defaultStream: { storage: "memory", maxAge: "15 minutes" },
        consumer: { maxDeliver: 3 }
      }))))

    it.effect("a message whose every delivery went unsettled (crashes) is dead-lettered with the reason at max_deliver", () =>
      Effect.gen(function*() {
        const destination = unique("sy.crashloop")
        const group = unique("g")
        const crashy = Topic.make(destination, Schema.Struct({ id: Schema.String }))
        yield* Publisher.publish(crashy, { id: "crashes-every-time" })
        // Two members in turn take the message and stop without settling it, as a crashing process would.
        for (const attempt of [1, 2]) {
          yield* Effect.gen(function*() {
            const broker = yield* Broker.Broker
            const sub = yield* broker.subscribe(destination, subscribeOptions(group))
            const [d] = yield* take(sub, 1, { ack: false })
            assert.strictEqual(d!.envelope.attempt, attempt)
          }).pipe(Effect.scoped)
        }
        const broker = yield* Broker.Broker
        const dlq = yield* broker.subscribe(`${destination}.dlq`, subscribeOptions(unique("dlq")))
        const handled: Array<string> = []
        const consumer = yield* Consumer.run(crashy, (order) => Effect.sync(() => handled.push(order.id)), {
          group
        }).pipe(Effect.forkScoped)
        const [dead] = yield* take(dlq, 1, { within: "15 seconds" })
        assert.deepStrictEqual(handled, [])
        assert.strictEqual(dead!.envelope.headers[Headers.deadLetterErrorTag], "DeliveryLimitExceeded")
        assert.include(dead!.envelope.headers[Headers.deadLetterReason], "delivered 3 times, past the broker's limit of 2")
        assert.strictEqual(dead!.envelope.headers[Headers.deadLetterAttempts], "2")
        assert.strictEqual(JSON.parse(text(dead!)).id, "crashes-every-time")
        // Nothing comes back to the group afterwards: the server reached max_deliver and the dead letter is acked.
        yield* Fiber.interrupt(consumer)
        const sub = yield* broker.subscribe(destination, subscribeOptions(group))
        assert.strictEqual((yield* drainFor(sub, "1500 millis")).length, 0)
      }).pipe(Effect.provide(Switchyard.on(NatsBroker.layer({
        connection: { servers },
        defaultStream: { storage: "memory", maxAge: "15 minutes" },
        consumer: { maxDeliver: 2 }
      })))), 40_000)

    it.effect("acks sent right before shutdown are not lost: the connection is drained, not closed", () =>
      Effect.gen(function*() {
        const destination = unique("sy.drain")
        const group = unique("g")
        const n = 500
        const ownLayer = NatsBroker.layer({
          connection: { servers },
          defaultStream: { storage: "memory", maxAge: "15 minutes" },
          consumer: { ackWait: "1 second" }
        })
        yield* Effect.gen(function*() {
          const broker = yield* Broker.Broker
          const sub = yield* broker.subscribe(destination, subscribeOptions(group, { prefetch: n }))
          yield* broker.publish(destination, Array.from({ length: n }, (_, i) => message(`m${i}`)))
          const got = yield* take(sub, n, { ack: false })
          // fire-and-forget acks, then the layer (and its connection) closes at once
          yield* Effect.forEach(got, (d) => d.ack, { discard: true })
        }).pipe(Effect.scoped, Effect.provide(ownLayer))
        const leftovers = yield* Effect.gen(function*() {
          const broker = yield* Broker.Broker
          const sub = yield* broker.subscribe(destination, subscribeOptions(group, { prefetch: n }))
          return yield* drainFor(sub, "2500 millis")
        }).pipe(Effect.scoped, Effect.provide(ownLayer))
        assert.strictEqual(leftovers.length, 0)
      }))

    it.effect("replays a destination with an ordered consumer", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.replay")
        yield* broker.publish(destination, ["a", "b", "c", "d"].map((s) => message(s, { key: s })))
        const all = yield* NatsBroker.replay(destination).pipe(Stream.runCollect, Effect.timeout("5 seconds"))
        assert.deepStrictEqual(all.map((e) => e.key), ["a", "b", "c", "d"])
        const tail = yield* NatsBroker.replay(destination, { fromSequence: 3 }).pipe(Stream.runCollect, Effect.timeout("5 seconds"))
        assert.deepStrictEqual(tail.map((e) => e.coordinates.sequence), [3, 4])
        const empty = yield* NatsBroker.replay(unique("sy.empty")).pipe(Stream.runCollect, Effect.timeout("5 seconds"))
        assert.strictEqual(empty.length, 0)
      }))

    it.effect("declared streams take precedence over first-use provisioning", () =>
      Effect.gen(function*() {
        const name = unique("DECL").replace(/-/g, "_")
        const prefix = unique("sy.decl")
        yield* Effect.gen(function*() {
          const broker = yield* Broker.Broker
          const js = yield* NatsTopology.NatsTopology
          yield* broker.publish(`${prefix}.created`, [message("x")])
          assert.strictEqual(yield* js.streamFor(`${prefix}.created`), name)
          const info = yield* Effect.promise(() => js.manager.streams.info(name))
          assert.strictEqual(info.state.messages, 1)
          assert.strictEqual(info.config.max_msgs, 1000)
          // declaring again with other limits updates in place
        }).pipe(Effect.provide(NatsBroker.layer({
          connection: { servers },
          streams: [{ name, subjects: [`${prefix}.>`], storage: "memory", maxMessages: 1000 }]
        })))
        yield* Effect.gen(function*() {
          const js = yield* NatsTopology.NatsTopology
          const info = yield* Effect.promise(() => js.manager.streams.info(name))
          assert.strictEqual(info.config.max_msgs, 2000)
          assert.strictEqual(info.state.messages, 1)
          yield* Effect.promise(() => js.manager.streams.delete(name))
        }).pipe(Effect.provide(NatsBroker.layer({
          connection: { servers },
          streams: [{ name, subjects: [`${prefix}.>`], storage: "memory", maxMessages: 2000 }]
        })))
      }))

    it.effect("dead-letter headers survive a publish to <destination>.dlq", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const destination = unique("sy.orders")
        const dlq = yield* broker.subscribe(`${destination}.dlq`, subscribeOptions(unique("dlq")))
        yield* broker.publish(`${destination}.dlq`, [message("bad", {
          headers: { [Headers.deadLetterReason]: "DecodeError: not JSON", [Headers.deadLetterAttempts]: "3" }
        })])
        const [d] = yield* take(dlq, 1)
        assert.strictEqual(d!.envelope.headers[Headers.deadLetterReason], "DecodeError: not JSON")
        assert.strictEqual(d!.envelope.coordinates.destination, `${destination}.dlq`)
      }))
  })
})
