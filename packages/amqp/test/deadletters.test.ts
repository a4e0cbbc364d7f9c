import { assert, layer } from "@effect/vitest"
import type * as amqp from "amqplib"
import { Broker, Consumer, Errors, Headers, Topic } from "@switchyard/core"
import { Data, Effect, Exit, Fiber, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { Topology } from "../src/index.ts"
import { BrokerLive, drainQueue, message, rabbitmqctl, rawChannel, rawPublish, unique } from "./helpers.ts"

const Order = Schema.Struct({ orderId: Schema.String, amount: Schema.Number })

class Refused extends Data.TaggedError("Refused")<{ readonly group: string }> {}

const encoder = new TextEncoder()
const json = (value: unknown) => encoder.encode(JSON.stringify(value))

/** The ready messages of a queue (a passive declare). */
const depth = (channel: amqp.Channel, queue: string) => Effect.promise(() => channel.checkQueue(queue).then((q) => q.messageCount))

/** `(original id, origin group)` of a dead letter, as one string. */
const origin = (envelope: { readonly headers: Readonly<Record<string, string>> }) =>
  `${envelope.headers[Headers.deadLetterOriginalId]}@${envelope.headers[Headers.deadLetterOriginGroup]}`

/**
 * Dead letters from two groups: raw amqplib messages to `destination` (group queues declared up front), then
 * `billing` and `shipping` consume them with `Consumer.run`. Invalid JSON is dead-lettered by both groups,
 * `bill-*` orders only by billing, `ship-*` orders only by shipping, `ok-*` by nobody. Returns the expected
 * `(original id, group)` pairs once the parking queue holds them all.
 */
const deadLettersFromTwoGroups = (
  destination: string,
  counts: { readonly bill: number; readonly ship: number; readonly poison: number; readonly ok: number }
): Effect.Effect<ReadonlyArray<string>, unknown, Broker.Broker | Scope.Scope> =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const channel = yield* rawChannel
    // an empty read declares the parking queue, so its depth can be watched from the start
    assert.strictEqual((yield* broker.browse!(`${destination}.dlq`, { prefetch: 1 }).pipe(Effect.scoped)).retained, 0)
    yield* Effect.promise(() =>
      Topology.declareOn(channel, Topology.merge(Topology.consumerGroup(destination, "billing"), Topology.consumerGroup(destination, "shipping")))
    )
    const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
    const raw = [
      ...range("bill", counts.bill).map((id) => ({ content: json({ orderId: id, amount: 1 }), options: { messageId: id, contentType: "application/json" } })),
      ...range("ship", counts.ship).map((id) => ({ content: json({ orderId: id, amount: 2 }), options: { messageId: id, contentType: "application/json" } })),
      ...range("poison", counts.poison).map((id) => ({ content: encoder.encode("{\"orderId\": "), options: { messageId: id, contentType: "application/json" } })),
      ...range("ok", counts.ok).map((id) => ({ content: json({ orderId: id, amount: 3 }), options: { messageId: id, contentType: "application/json" } }))
    ]
    for (let i = 0; i < raw.length; i += 500) yield* rawPublish(channel, destination, raw.slice(i, i + 500))
    const topic = Topic.make(destination, Order)
    const refuse = (group: string, prefix: string) => (order: typeof Order.Type) =>
      order.orderId.startsWith(prefix) ? Effect.fail(new Refused({ group })) : Effect.void
    const options = (group: string) => ({ group, concurrency: 8, ordering: "none" as const, prefetch: 256, isRetryable: () => false })
    const billing = yield* Consumer.run(topic, refuse("billing", "bill-"), options("billing")).pipe(Effect.forkChild)
    const shipping = yield* Consumer.run(topic, refuse("shipping", "ship-"), options("shipping")).pipe(Effect.forkChild)
    const expected = [
      ...range("bill", counts.bill).map((id) => `${id}@billing`),
      ...range("ship", counts.ship).map((id) => `${id}@shipping`),
      ...range("poison", counts.poison).flatMap((id) => [`${id}@billing`, `${id}@shipping`])
    ]
    // both group queues empty and every dead letter parked
    const parked = { count: -1, billing: -1, shipping: -1 }
    yield* Effect.gen(function*() {
      parked.count = yield* depth(channel, `${destination}.dlq`)
      parked.billing = yield* depth(channel, `${destination}.billing`)
      parked.shipping = yield* depth(channel, `${destination}.shipping`)
    }).pipe(Effect.andThen(Effect.sleep("100 millis")), Effect.repeat({ until: () => parked.count >= expected.length && parked.billing === 0 && parked.shipping === 0 }))
    yield* Fiber.interrupt(billing)
    yield* Fiber.interrupt(shipping)
    assert.strictEqual(yield* depth(channel, `${destination}.dlq`), expected.length)
    return expected
  })

/** Reads a whole browse, settling each delivery with `settle` (nack = keep). */
const browseAll = (
  destination: string,
  prefetch: number,
  settle: (delivery: Broker.RawDelivery) => "ack" | "nack"
) =>
  Effect.scoped(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const browse = yield* broker.browse!(destination, { prefetch })
    const seen = yield* browse.deliveries.pipe(
      Stream.mapEffect((d) => (settle(d) === "ack" ? d.ack : d.nack()).pipe(Effect.as(d.envelope))),
      Stream.runCollect
    )
    return { retained: browse.retained, seen: Array.from(seen) }
  }))

layer(BrokerLive, { excludeTestServices: true, timeout: "120 seconds" })("dead letters on RabbitMQ", (it) => {
  it.effect("the parking queue <topic>.dlq is browsed as an operator: dead letters of two groups, with their count, outside any group", () =>
    Effect.gen(function*() {
      const destination = unique("dl-browse")
      const expected = yield* deadLettersFromTwoGroups(destination, { bill: 5, ship: 4, poison: 3, ok: 6 })
      assert.strictEqual(expected.length, 15)
      const read = yield* browseAll(`${destination}.dlq`, 4, () => "nack")
      assert.strictEqual(read.retained, 15)
      assert.deepStrictEqual(read.seen.map(origin).sort(), [...expected].sort())
      const byId = new Map(read.seen.map((e) => [origin(e), e]))
      assert.strictEqual(byId.get("bill-0@billing")!.headers[Headers.deadLetterErrorTag], "Refused")
      assert.strictEqual(byId.get("poison-0@shipping")!.headers[Headers.deadLetterErrorTag], "DecodeError")
      assert.strictEqual(byId.get("bill-0@billing")!.headers[Headers.deadLetterOriginDestination], destination)
      assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(byId.get("ship-1@shipping")!.payload)), { orderId: "ship-1", amount: 2 })
      // nothing was consumed by the read, and no group queue of the parking destination was made
      const channel = yield* rawChannel
      assert.strictEqual(yield* depth(channel, `${destination}.dlq`), 15)
      const again = yield* browseAll(`${destination}.dlq`, 100, () => "nack")
      assert.strictEqual(again.retained, 15)
      assert.strictEqual(again.seen.length, 15)
    }))

  it.effect("ack removes a dead letter for good, nack keeps it (prefetch 2, 7 kept: held nacks never stall the read)", () =>
    Effect.gen(function*() {
      const destination = unique("dl-ack")
      const expected = yield* deadLettersFromTwoGroups(destination, { bill: 6, ship: 5, poison: 2, ok: 2 })
      const read = yield* browseAll(`${destination}.dlq`, 2, (d) => (d.envelope.headers[Headers.deadLetterOriginGroup] === "billing" ? "ack" : "nack"))
      assert.strictEqual(read.retained, expected.length)
      assert.strictEqual(read.seen.length, expected.length)
      const channel = yield* rawChannel
      const kept = expected.filter((o) => o.endsWith("@shipping")).sort()
      assert.strictEqual(kept.length, 7)
      assert.strictEqual(yield* depth(channel, `${destination}.dlq`), kept.length)
      const left = yield* browseAll(`${destination}.dlq`, 2, () => "ack")
      assert.strictEqual(left.retained, kept.length)
      assert.deepStrictEqual(left.seen.map(origin).sort(), kept)
      assert.strictEqual(yield* depth(channel, `${destination}.dlq`), 0)
      const empty = yield* browseAll(`${destination}.dlq`, 2, () => "ack")
      assert.deepStrictEqual(empty, { retained: 0, seen: [] })
    }))

  it.effect("a read ends after the messages retained at open: later dead letters wait for the next read, unsettled ones stay", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = `${unique("dl-late")}.dlq`
      const channel = yield* rawChannel
      const publishN = (prefix: string, n: number) =>
        rawPublish(channel, destination, Array.from({ length: n }, (_, i) => ({ content: json({ i }), options: { messageId: `${prefix}-${i}` } })))
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const browse = yield* broker.browse!(destination, { prefetch: 10 })
        assert.strictEqual(browse.retained, 0)
        return yield* Stream.runCollect(browse.deliveries)
      }))
      assert.strictEqual(first.length, 0)
      yield* publishN("early", 5)
      const ids = yield* Effect.scoped(Effect.gen(function*() {
        const browse = yield* broker.browse!(destination, { prefetch: 3 })
        yield* publishN("late", 4)
        // the first two are acked, the rest left unsettled when the scope closes
        return yield* browse.deliveries.pipe(
          Stream.zipWithIndex,
          Stream.mapEffect(([d, i]) => (i < 2 ? d.ack : Effect.void).pipe(Effect.as(d.envelope.id))),
          Stream.runCollect
        )
      }))
      assert.deepStrictEqual(Array.from(ids), ["early-0", "early-1", "early-2", "early-3", "early-4"])
      const rest = yield* drainQueue(destination)
      assert.deepStrictEqual(rest.map((m) => String(m.properties.messageId)).sort(), ["early-2", "early-3", "early-4", "late-0", "late-1", "late-2", "late-3"])
    }))

  it.effect("a read ends when another reader empties the queue first", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = `${unique("dl-dry")}.dlq`
      const channel = yield* rawChannel
      yield* broker.browse!(destination, { prefetch: 1 }).pipe(Effect.scoped)
      yield* rawPublish(channel, destination, Array.from({ length: 5 }, (_, i) => ({ content: json({ i }), options: { messageId: `m-${i}` } })))
      const result = yield* Effect.scoped(Effect.gen(function*() {
        const browse = yield* broker.browse!(destination, { prefetch: 1 })
        const taken = yield* drainQueue(destination)
        const seen = yield* browse.deliveries.pipe(Stream.mapEffect((d) => d.ack.pipe(Effect.as(d.envelope.id))), Stream.runCollect)
        return { retained: browse.retained, taken: taken.length, seen: seen.length }
      }))
      assert.strictEqual(result.retained, 5)
      assert.isAtMost(result.seen, 1)
      assert.strictEqual(result.seen + result.taken, 5)
    }))

  it.effect("a destination without a parking queue is not browsable: SubscribeError of kind NotFound", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("dl-none")
      yield* broker.publish(destination, [message("x", "{}")])
      const exit = yield* broker.browse!(destination, { prefetch: 8 }).pipe(Effect.scoped, Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      assert.isTrue(error !== undefined && error._tag === "Fail" && error.error instanceof Errors.SubscribeError && error.error.kind === "NotFound")
    }))

  it.effect("lag is the group queue's ready messages; serverInfo is RabbitMQ's product and version", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("dl-lag")
      const channel = yield* rawChannel
      yield* Effect.promise(() => Topology.declareOn(channel, Topology.consumerGroup(destination, "billing")))
      assert.strictEqual(yield* broker.lag!(destination, "billing"), 0)
      yield* rawPublish(channel, destination, Array.from({ length: 7 }, (_, i) => ({ content: json({ i }) })))
      assert.strictEqual(yield* broker.lag!(destination, "billing"), 7)
      yield* drainQueue(`${destination}.billing`)
      assert.strictEqual(yield* broker.lag!(destination, "billing"), 0)
      const missing = yield* broker.lag!(destination, "nobody").pipe(Effect.flip)
      assert.strictEqual(missing.kind, "NotFound")
      const info = yield* broker.serverInfo!
      assert.strictEqual(info.product, "RabbitMQ")
      const version = (yield* rabbitmqctl("version")).trim()
      assert.strictEqual(info.version, version)
      assert.include(info.details["capabilities"] ?? "", "publisher_confirms")
    }))
})
