import { assert, describe, layer } from "@effect/vitest"
import { Broker, Consumer, Errors } from "@switchyard/core"
import { PoisonCorpus } from "@switchyard/core/testing"
import { Deferred, Effect, Exit, Fiber, Metric, Ref, Schema, Scope, Stream } from "effect"
import { NatsBroker, NatsRpc } from "../src/index.ts"
import { drainFor, message, servers, subscribeOptions, take, text, unique } from "./helpers.ts"
import { eventually, publishCore, rawConnection, utf8 } from "./raw.ts"

const live = NatsBroker.layerCore({ connection: { servers, name: "switchyard-nats-core-test" } })

const Quote = NatsRpc.endpoint(
  "placeholder",
  Schema.Struct({ sku: Schema.String, quantity: Schema.Int }),
  Schema.Struct({ sku: Schema.String, total: Schema.Number })
)
const endpointOn = (subject: string) => ({ ...Quote, subject })

describe("core NATS broker", () => {
  layer(live, { timeout: "30 seconds", excludeTestServices: true })((it) => {
    it.effect("declares honest at-most-once capabilities", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        assert.isTrue(broker.capabilities.atMostOnce)
        assert.isFalse(broker.capabilities.redelivery)
        assert.isFalse(broker.capabilities.persistent)
        assert.isTrue(broker.capabilities.consumerGroups)
      }))

    it.effect("a header name nats.js refuses fails the publish with a typed PublishError (Invalid)", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const error = yield* Effect.flip(broker.publish(unique("sy.core.badheader"), [message("bad", { headers: { "bad name": "v" } })]))
        assert.strictEqual(error._tag, "PublishError")
        assert.strictEqual(error.reason._tag, "Invalid")
        assert.include(error.reason.message, "not a valid character in a header name")
      }))

    it.effect("a message over the server's max_payload fails the publish as TooLarge (its header block counted)", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        // 1 MiB is the server's default max_payload; the payload alone fits, its header block tips it over.
        const payload = "x".repeat(1024 * 1024 - 40)
        const error = yield* Effect.flip(broker.publish(unique("sy.core.large"), [message(payload, { headers: { "x-pad": "y".repeat(200) } })]))
        assert.strictEqual(error._tag, "PublishError")
        assert.strictEqual(error.reason._tag, "TooLarge")
      }))

    it.effect("wildcard subscriptions see matching subjects only, with headers", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const root = unique("sy.core")
        const star = yield* broker.subscribe(`${root}.*.created`, subscribeOptions(unique("s")))
        const tail = yield* broker.subscribe(`${root}.>`, subscribeOptions(unique("t")))
        yield* broker.publish(`${root}.orders.created`, [message("o", { headers: { "x-h": "1" }, key: "k" })])
        yield* broker.publish(`${root}.users.created`, [message("u")])
        yield* broker.publish(`${root}.orders.deleted`, [message("d")])
        const s = yield* take(star, 2)
        assert.deepStrictEqual(s.map(text), ["o", "u"])
        assert.strictEqual(s[0]!.envelope.headers["x-h"], "1")
        assert.strictEqual(s[0]!.envelope.key, "k")
        assert.strictEqual(s[0]!.envelope.coordinates.destination, `${root}.orders.created`)
        assert.deepStrictEqual((yield* take(tail, 3)).map(text), ["o", "u", "d"])
        assert.strictEqual((yield* drainFor(star, "200 millis")).length, 0)
      }))

    it.effect("a queue group shares messages; nothing is redelivered after nack", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const subject = unique("sy.core.q")
        const group = unique("q")
        const a = yield* broker.subscribe(subject, subscribeOptions(group))
        const b = yield* broker.subscribe(subject, subscribeOptions(group))
        const n = 200
        yield* broker.publish(subject, Array.from({ length: n }, (_, i) => message(`m${i}`)))
        const [ra, rb] = yield* Effect.all([drainFor(a, "500 millis"), drainFor(b, "500 millis")], {
          concurrency: 2
        })
        assert.strictEqual(ra.length + rb.length, n)
        assert.isAbove(ra.length, 0)
        assert.isAbove(rb.length, 0)
        const c = yield* broker.subscribe(subject, subscribeOptions(group))
        yield* broker.publish(subject, [message("once")])
        const [got] = yield* Stream.merge(a.deliveries, Stream.merge(b.deliveries, c.deliveries)).pipe(
          Stream.take(1),
          Stream.runCollect
        )
        yield* got!.nack()
        const again = yield* Effect.all([drainFor(a, "300 millis"), drainFor(b, "300 millis"), drainFor(c, "300 millis")], {
          concurrency: 3
        })
        assert.strictEqual(again.flat().length, 0)
      }))
  })

  layer(live, { timeout: "60 seconds", excludeTestServices: true })("slow consumers", (it) => {
    it.effect("a stalled subscription holds at most prefetch deliveries; the rest is dropped and counted; it continues", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const nc = yield* rawConnection
        const subject = unique("sy.core.slow")
        const group = unique("slow")
        const prefetch = 100
        const sub = yield* broker.subscribe(subject, subscribeOptions(group, { prefetch }))
        const dropped = Metric.withAttributes(NatsBroker.droppedDeliveries, {
          "messaging.destination.name": subject,
          "messaging.consumer.group.name": group
        })
        // 20,000 × 1 KiB from a raw publisher while nobody reads the subscription.
        const body = "x".repeat(1024)
        const total = 20_000
        yield* publishCore(nc, subject, Array.from({ length: total }, (_, i) => ({ payload: utf8.encode(`m${i} ${body}`) })))
        const count = yield* eventually(
          Metric.value(dropped).pipe(Effect.map((state) => state.count)),
          (n) => n >= total - prefetch
        )
        assert.strictEqual(count, total - prefetch)
        // What was kept is the first `prefetch` messages; the subscription goes on with new ones.
        const kept = yield* take(sub, prefetch)
        assert.deepStrictEqual(kept.map((d) => text(d).split(" ")[0]), Array.from({ length: prefetch }, (_, i) => `m${i}`))
        yield* publishCore(nc, subject, [{ payload: utf8.encode("after the stall") }])
        const [after] = yield* take(sub, 1)
        assert.strictEqual(text(after!), "after the stall")
        assert.strictEqual((yield* Metric.value(dropped)).count, total - prefetch)
      }))
  })

  layer(live, { timeout: "30 seconds", excludeTestServices: true })("typed consumer defaults", (it) => {
    it.effect("Consumer.run with default options keeps a raw burst of 2,000 messages that arrives in one read", () =>
      Effect.gen(function*() {
        const nc = yield* rawConnection
        const topic = PoisonCorpus.topic(unique("sy.core.burst"))
        const handled = yield* Ref.make(new Set<string>())
        // Defaults only: nothing paces a core NATS sender, so the default buffer must absorb a publisher's burst.
        const consumer = yield* Consumer.start(topic, (order) => Ref.update(handled, (s) => new Set(s).add(order.id)), {
          group: unique("burst")
        })
        yield* Effect.sleep("200 millis") // the subscription is registered at the server
        const total = 2_000
        yield* publishCore(
          nc,
          topic.name,
          Array.from({ length: total }, (_, i) => ({ payload: utf8.encode(JSON.stringify({ id: `b${i}`, n: i })) })),
          total
        )
        const seen = yield* eventually(Ref.get(handled), (s) => s.size >= total)
        assert.strictEqual(seen.size, total)
        yield* Fiber.interrupt(consumer)
      }))
  })

  layer(live, { timeout: "30 seconds", excludeTestServices: true })("request-reply", (it) => {
    it.effect("a responder whose handler dies answers with RemoteError at once, long before the timeout", () =>
      Effect.gen(function*() {
        const endpoint = endpointOn(unique("sy.rpc.die"))
        yield* NatsRpc.serve(endpoint, () => Effect.die(new Error("boom")))
        const error = yield* NatsRpc.request(endpoint, { sku: "x", quantity: 1 }, { timeout: "20 seconds" }).pipe(
          Effect.flip,
          Effect.timeout("5 seconds")
        )
        assert.instanceOf(error, Errors.RemoteError)
        assert.include(error._tag === "RemoteError" ? error.reason : "", "boom")
      }))

    it.effect("Schema-typed round trip through a responder", () =>
      Effect.gen(function*() {
        const endpoint = endpointOn(unique("sy.rpc.quote"))
        yield* NatsRpc.serve(endpoint, ({ sku, quantity }) => Effect.succeed({ sku, total: quantity * 2.5 }))
        const replies = yield* Effect.forEach(
          [1, 2, 3],
          (quantity) => NatsRpc.request(endpoint, { sku: "A-1", quantity }),
          { concurrency: 3 }
        )
        assert.deepStrictEqual(replies, [
          { sku: "A-1", total: 2.5 },
          { sku: "A-1", total: 5 },
          { sku: "A-1", total: 7.5 }
        ])
      }))

    it.effect("no responders is a typed NoRespondersError", () =>
      Effect.gen(function*() {
        const endpoint = endpointOn(unique("sy.rpc.nobody"))
        const error = yield* NatsRpc.request(endpoint, { sku: "x", quantity: 1 }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "NoRespondersError")
      }))

    it.effect("a slow responder is a typed RequestTimeoutError", () =>
      Effect.gen(function*() {
        const endpoint = endpointOn(unique("sy.rpc.slow"))
        yield* NatsRpc.serve(endpoint, ({ sku }) => Effect.sleep("1 second").pipe(Effect.as({ sku, total: 0 })))
        const started = Date.now()
        const error = yield* NatsRpc.request(endpoint, { sku: "x", quantity: 1 }, { timeout: "200 millis" }).pipe(
          Effect.flip
        )
        assert.strictEqual(error._tag, "RequestTimeoutError")
        assert.isBelow(Date.now() - started, 900)
      }))

    it.effect("closing a responder answers the requests in flight, then takes no new ones", () =>
      Effect.gen(function*() {
        const endpoint = endpointOn(unique("sy.rpc.drain"))
        const started = yield* Deferred.make<void>()
        const scope = yield* Scope.make()
        yield* NatsRpc.serve(endpoint, ({ sku }) =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.sleep("300 millis")),
            Effect.as({ sku, total: 1 })
          )).pipe(Scope.provide(scope))
        const pending = yield* NatsRpc.request(endpoint, { sku: "in-flight", quantity: 1 }).pipe(Effect.forkChild)
        yield* Deferred.await(started)
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(yield* Fiber.join(pending), { sku: "in-flight", total: 1 })
        const late = yield* NatsRpc.request(endpoint, { sku: "late", quantity: 1 }, { timeout: "500 millis" }).pipe(
          Effect.flip
        )
        assert.strictEqual(late._tag, "NoRespondersError")
      }))

    it.effect("handler failures and undecodable requests come back as RemoteError", () =>
      Effect.gen(function*() {
        const endpoint = endpointOn(unique("sy.rpc.fail"))
        class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { sku: Schema.String }) {}
        yield* NatsRpc.serve(endpoint, ({ sku }) => new OutOfStock({ sku }))
        // At once: long before the request's own timeout.
        const error = yield* NatsRpc.request(endpoint, { sku: "gone", quantity: 1 }, { timeout: "20 seconds" }).pipe(
          Effect.flip,
          Effect.timeout("5 seconds")
        )
        assert.strictEqual(error._tag, "RemoteError")
        // The shared contract: core's RemoteError, the reason in x-switchyard-rpc-error (as on AMQP).
        assert.instanceOf(error, Errors.RemoteError)
        assert.strictEqual(NatsRpc.errorHeader, "x-switchyard-rpc-error")
        assert.include(error._tag === "RemoteError" ? error.reason : "", "OutOfStock")
        const loose = NatsRpc.endpoint(endpoint.subject, Schema.Struct({ sku: Schema.Number }), Schema.Unknown)
        const bad = yield* NatsRpc.request(loose, { sku: 1 }, { timeout: "20 seconds" }).pipe(Effect.flip, Effect.timeout("5 seconds"))
        assert.strictEqual(bad._tag, "RemoteError")
        assert.include(bad._tag === "RemoteError" ? bad.reason : "", "DecodeError")
        const encodeFail = yield* NatsRpc.request(endpoint, { sku: "x", quantity: 1.5 }).pipe(Effect.flip)
        assert.strictEqual(encodeFail._tag, "EncodeError")
      }))
  })
})
