import { assert, layer } from "@effect/vitest"
import type * as amqp from "amqplib"
import { Broker, Consumer, DeadLetters, Errors, Headers, Topic } from "@switchyard/core"
import { Data, Effect, Exit, Fiber, References, Result, Schema, Stream } from "effect"
import type { Scope } from "effect"
import { AmqpTopology } from "../src/index.ts"
import { RawAmqp } from "../src/testing/index.ts"
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
    yield* RawAmqp.declare(channel, AmqpTopology.merge(AmqpTopology.consumerGroup(destination, "billing"), AmqpTopology.consumerGroup(destination, "shipping")))
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
      yield* RawAmqp.declare(channel, AmqpTopology.consumerGroup(destination, "billing"))
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

  it.effect("DeadLetters on RabbitMQ: two groups' dead letters listed and counted, redrive({ group }) makes only that group reprocess them, purge empties the rest", () =>
    Effect.gen(function*() {
      const destination = unique("dl-ops")
      const channel = yield* rawChannel
      yield* RawAmqp.declare(channel, AmqpTopology.merge(AmqpTopology.consumerGroup(destination, "billing"), AmqpTopology.consumerGroup(destination, "shipping")))
      const topic = Topic.make(destination, Order)
      const fixed = { billing: false, shipping: false }
      const runs = { billing: new Map<string, number>(), shipping: new Map<string, number>() }
      const handler = (group: "billing" | "shipping", prefix: string) => (order: typeof Order.Type) =>
        Effect.suspend(() => {
          runs[group].set(order.orderId, (runs[group].get(order.orderId) ?? 0) + 1)
          return !fixed[group] && order.orderId.startsWith(prefix) ? Effect.fail(new Refused({ group })) : Effect.void
        })
      const options = (group: string) => ({ group, idempotency: true, concurrency: 4, ordering: "none" as const, isRetryable: () => false })
      const billing = yield* Consumer.run(topic, handler("billing", "bill-"), options("billing")).pipe(Effect.forkChild)
      const shipping = yield* Consumer.run(topic, handler("shipping", "ship-"), options("shipping")).pipe(Effect.forkChild)
      const ids = [
        ...Array.from({ length: 8 }, (_, i) => `bill-${i}`),
        ...Array.from({ length: 5 }, (_, i) => `ship-${i}`),
        ...Array.from({ length: 7 }, (_, i) => `ok-${i}`)
      ]
      yield* rawPublish(channel, destination, ids.map((id) => ({ content: json({ orderId: id, amount: 1 }), options: { messageId: id, contentType: "application/json" } })))
      yield* Effect.sleep("50 millis").pipe(Effect.repeat({ until: () => runs.billing.size === ids.length && runs.shipping.size === ids.length }))
      const counted = { total: 0 }
      yield* DeadLetters.count(topic).pipe(
        Effect.tap((c) => Effect.sync(() => (counted.total = c.total))),
        Effect.andThen(Effect.sleep("100 millis")),
        Effect.repeat({ until: () => counted.total >= 13 })
      )

      const listed = yield* Stream.runCollect(DeadLetters.list(topic))
      assert.deepStrictEqual(
        listed.map((dl) => `${dl.original.id}@${dl.originGroup}`).sort(),
        [...ids.filter((id) => id.startsWith("bill-")).map((id) => `${id}@billing`), ...ids.filter((id) => id.startsWith("ship-")).map((id) => `${id}@shipping`)].sort()
      )
      for (const dl of listed) {
        assert.strictEqual(dl.errorTag, "Refused")
        assert.strictEqual(dl.originDestination, destination)
        assert.strictEqual(dl.attempts, 1)
        assert.isTrue(Result.isSuccess(dl.value) && dl.value.success.orderId === dl.original.id)
      }
      const counts = yield* DeadLetters.count(topic)
      assert.deepStrictEqual([counts.total, counts.byGroup], [13, { billing: 8, shipping: 5 }])
      assert.strictEqual((yield* Stream.runCollect(DeadLetters.list(topic, { group: "shipping", limit: 3 }))).length, 3)

      // billing is fixed: only its dead letters go back, and only billing handles them again
      fixed.billing = true
      const summary = yield* DeadLetters.redrive(topic, { group: "billing" })
      assert.deepStrictEqual([summary.retained, summary.matched, summary.redriven, summary.kept, summary.notRemoved], [13, 8, 8, 5, 0])
      yield* Effect.sleep("50 millis").pipe(
        Effect.repeat({ until: () => ids.filter((id) => id.startsWith("bill-")).every((id) => runs.billing.get(id) === 2) })
      )
      // every redriven copy reached shipping's queue too: once it is empty and shipping stopped, none ran there
      const lag = { shipping: -1, billing: -1 }
      const broker = yield* Broker.Broker
      yield* Effect.gen(function*() {
        lag.shipping = yield* broker.lag!(destination, "shipping")
        lag.billing = yield* broker.lag!(destination, "billing")
      }).pipe(Effect.andThen(Effect.sleep("50 millis")), Effect.repeat({ until: () => lag.shipping === 0 && lag.billing === 0 }))
      yield* Fiber.interrupt(shipping)
      yield* Fiber.interrupt(billing)
      for (const id of ids) {
        assert.strictEqual(runs.billing.get(id), id.startsWith("bill-") ? 2 : 1, `billing ran ${id}`)
        assert.strictEqual(runs.shipping.get(id), 1, `shipping ran ${id}`)
      }
      const left = yield* Stream.runCollect(DeadLetters.list(topic))
      assert.deepStrictEqual(left.map((dl) => dl.originGroup), Array(5).fill("shipping"))

      const dry = yield* DeadLetters.purge(topic, { group: "shipping", dryRun: true })
      assert.deepStrictEqual([dry.matched, dry.purged, dry.kept], [5, 5, 5])
      const purged = yield* DeadLetters.purge(topic, { group: "shipping" })
      assert.deepStrictEqual([purged.retained, purged.matched, purged.purged, purged.kept], [5, 5, 5, 0])
      assert.strictEqual((yield* DeadLetters.count(topic)).total, 0)
      assert.strictEqual(yield* depth(channel, `${destination}.dlq`), 0)
    }))

  it.effect("a 10,000-message redrive on RabbitMQ: rate and counts printed, every id handled again by the failing group only, nothing left parked", () =>
    Effect.gen(function*() {
      const total = 10_000
      const destination = unique("dl-bulk")
      const channel = yield* rawChannel
      yield* RawAmqp.declare(channel, AmqpTopology.merge(AmqpTopology.consumerGroup(destination, "billing"), AmqpTopology.consumerGroup(destination, "audit")))
      // an empty read declares the parking queue, so its depth can be watched from the start
      assert.strictEqual((yield* (yield* Broker.Broker).browse!(`${destination}.dlq`, { prefetch: 1 }).pipe(Effect.scoped)).retained, 0)
      const topic = Topic.make(destination, Order)
      const downstream = { up: false }
      const billing = { attempts: new Map<string, number>(), handled: new Set<string>() }
      const audit = new Map<string, number>()
      const options = (group: string) => ({ group, idempotency: true, concurrency: 16, ordering: "none" as const, prefetch: 512, isRetryable: () => false })
      const billingFiber = yield* Consumer.run(topic, (order) =>
        Effect.suspend(() => {
          billing.attempts.set(order.orderId, (billing.attempts.get(order.orderId) ?? 0) + 1)
          if (!downstream.up) return Effect.fail(new Refused({ group: "billing" }))
          billing.handled.add(order.orderId)
          return Effect.void
        }), options("billing")).pipe(Effect.forkChild)
      const auditFiber = yield* Consumer.run(topic, (order) => Effect.sync(() => audit.set(order.orderId, (audit.get(order.orderId) ?? 0) + 1)), options("audit")).pipe(
        Effect.forkChild
      )
      const ids = Array.from({ length: total }, (_, i) => `o-${i}`)
      const raw = ids.map((id) => ({ content: json({ orderId: id, amount: 1 }), options: { messageId: id, contentType: "application/json" } }))
      for (let i = 0; i < raw.length; i += 500) yield* rawPublish(channel, destination, raw.slice(i, i + 500))
      // wait until every dead letter is parked
      const parked = { count: 0 }
      yield* depth(channel, `${destination}.dlq`).pipe(
        Effect.tap((n) => Effect.sync(() => (parked.count = n))),
        Effect.andThen(Effect.sleep("100 millis")),
        Effect.repeat({ until: () => parked.count >= total })
      )
      assert.strictEqual(parked.count, total)
      assert.strictEqual(billing.handled.size, 0)

      // a full read that keeps everything (10,000 held nacks, prefetch 256)
      const countStarted = Date.now()
      const counts = yield* DeadLetters.count(topic)
      const countMillis = Date.now() - countStarted
      assert.deepStrictEqual([counts.total, counts.byGroup], [total, { billing: total }])
      assert.strictEqual(yield* depth(channel, `${destination}.dlq`), total)

      downstream.up = true
      const progress: Array<DeadLetters.Progress> = []
      const started = Date.now()
      const summary = yield* DeadLetters.redrive(topic, { group: "billing", onProgress: (p) => Effect.sync(() => progress.push(p)) })
      const redriveMillis = Date.now() - started
      yield* Effect.sleep("50 millis").pipe(Effect.repeat({ until: () => billing.handled.size === total }))
      const handledMillis = Date.now() - started
      // audit got every redriven copy too: once its queue is empty and it has drained, it ran none of them
      const broker = yield* Broker.Broker
      const lag = { audit: -1 }
      yield* broker.lag!(destination, "audit").pipe(
        Effect.tap((n) => Effect.sync(() => (lag.audit = n))),
        Effect.andThen(Effect.sleep("50 millis")),
        Effect.repeat({ until: () => lag.audit === 0 })
      )
      yield* Fiber.interrupt(auditFiber)
      yield* Fiber.interrupt(billingFiber)

      assert.deepStrictEqual(
        [summary.retained, summary.seen, summary.matched, summary.redriven, summary.kept, summary.notRemoved, summary.unredrivable],
        [total, total, total, total, 0, 0, 0]
      )
      assert.strictEqual(Object.values(summary.byReason).reduce((a, b) => a + b, 0), total)
      assert.strictEqual(billing.handled.size, total)
      for (const id of ids) {
        assert.strictEqual(billing.attempts.get(id), 2, `billing ran ${id}`)
        assert.strictEqual(audit.get(id), 1, `audit ran ${id}`)
      }
      assert.strictEqual(yield* depth(channel, `${destination}.dlq`), 0)
      assert.strictEqual(yield* broker.lag!(destination, "billing"), 0)
      assert.strictEqual(progress.at(-1)?.done, total)
      console.log(
        `[figures] rabbitmq redrive: ${summary.redriven} of ${summary.retained} dead letters redriven in ${summary.elapsedMillis} ms ` +
          `(${Math.round(summary.ratePerSecond)} msg/s by the summary; ${redriveMillis} ms wall); all ${billing.handled.size} ids handled ` +
          `again by "billing" ${handledMillis} ms after the start; "audit" handled ${audit.size} ids once each and none again; ` +
          `${progress.length} progress reports; parked after: 0; lost: ${total - billing.handled.size}; ` +
          `DeadLetters.count read all ${counts.total} (keeping them) in ${countMillis} ms`
      )
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")), { timeout: 300_000 })
})
