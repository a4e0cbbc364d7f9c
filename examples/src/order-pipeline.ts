/**
 * The order pipeline demo.
 *
 * An order service publishes OrderPlaced / PaymentProcessed events; three consumer groups react:
 * - email (idempotent: duplicates of an order are emailed once; transient SMTP failures are retried),
 * - analytics (batched: reads the raw delivery stream in batches and acks per batch),
 * - inventory (per-key ordered across 8 parallel lanes; a discontinued SKU fails permanently).
 * Some messages are malformed, and one names an event type nobody knows, to show the dead-letter path.
 *
 * Run: `./switchyard demo` (in-memory broker) or `./switchyard demo --broker amqp|nats|kafka|sqs|redis`.
 * Options: `--orders N` (default 500). SIGINT / SIGTERM drains in-flight messages and exits.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Broker, Codec, Consumer, Envelope, Headers, Publisher, Router, Subscriber, Telemetry, Topic } from "@switchyard/core"
import { Clock, Config, Duration, Effect, Fiber, Layer, Metric, Ref, Schedule, Schema, Stream } from "effect"
import { brokerLayer, brokerName } from "./brokers.ts"
import type { OrderPlaced, PaymentProcessed } from "./domain.ts"
import { discontinuedSku, OrderEvent, ordersDestination } from "./domain.ts"

class SmtpUnavailable extends Schema.TaggedError<SmtpUnavailable>()("SmtpUnavailable", { orderId: Schema.String }) {}
class DemoFailed extends Schema.TaggedError<DemoFailed>()("DemoFailed", { message: Schema.String }) {}
class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { sku: Schema.String }) {}

interface Stats {
  readonly emailed: number
  readonly emailRetries: number
  readonly analyticsBatches: number
  readonly analyticsEvents: number
  readonly revenue: number
  readonly reserved: number
  readonly inventoryOrderViolations: number
  readonly deadLettered: ReadonlyArray<{ readonly group: string; readonly tag: string; readonly reason: string }>
}

const emptyStats: Stats = {
  emailed: 0,
  emailRetries: 0,
  analyticsBatches: 0,
  analyticsEvents: 0,
  revenue: 0,
  reserved: 0,
  inventoryOrderViolations: 0,
  deadLettered: []
}

const argValue = (flag: string): string | undefined => {
  const index = process.argv.indexOf(flag)
  return index === -1 ? undefined : process.argv[index + 1]
}

const program = Effect.gen(function*() {
  const orderCount = Number(argValue("--orders") ?? (yield* Config.Int("DEMO_ORDERS").pipe(Config.withDefault(500))))
  const run = Date.now().toString(36)
  const destination = `${ordersDestination}.${run}`
  const stats = yield* Ref.make(emptyStats)
  const broker = yield* Broker.Broker
  // Where a queue's consumers compete whatever their group (SQS), fan-out is the producer's, as SNS would do
  // it: one FIFO queue per group (per-key order), every event published to each; one dead-letter queue for all.
  const fanOut = !broker.capabilities.consumerGroups
  const destinationOf = (group: string) => (fanOut ? `${destination}.${group}.fifo` : destination)
  const deadLetterDestination = `${destination}.dlq`
  yield* Effect.logInfo(
    `order pipeline on ${broker.system}: ${orderCount} orders → ${fanOut ? `one queue per group (${destinationOf("<group>")})` : destination}`
  )

  // ---- email: idempotent, transient failures retried with exponential backoff -------------------
  const emailAttempts = new Map<string, number>()
  const email = Router.make(destinationOf("email"), OrderEvent, {
    OrderPlaced: (order: OrderPlaced) =>
      Effect.gen(function*() {
        const attempt = (emailAttempts.get(order.orderId) ?? 0) + 1
        emailAttempts.set(order.orderId, attempt)
        if (attempt > 1) yield* Ref.update(stats, (s) => ({ ...s, emailRetries: s.emailRetries + 1 }))
        // Every 7th order hits a flaky SMTP server on its first two attempts.
        if (Number(order.orderId.slice(6)) % 7 === 0 && attempt <= 2) return yield* new SmtpUnavailable({ orderId: order.orderId })
        yield* Ref.update(stats, (s) => ({ ...s, emailed: s.emailed + 1 }))
      }),
    PaymentProcessed: () => Effect.void
  }, { key: (e) => e.orderId })

  // ---- inventory: per-order ordering over parallel lanes; discontinued SKUs fail permanently ----
  const lastSeen = new Map<string, string>()
  const inventory = Router.make(destinationOf("inventory"), OrderEvent, {
    OrderPlaced: (order: OrderPlaced) =>
      Effect.gen(function*() {
        lastSeen.set(order.orderId, "OrderPlaced")
        const discontinued = order.items.find((item) => item.sku === discontinuedSku)
        if (discontinued !== undefined) return yield* new OutOfStock({ sku: discontinued.sku })
        yield* Effect.sleep(Duration.millis(1))
        yield* Ref.update(stats, (s) => ({ ...s, reserved: s.reserved + order.items.length }))
      }),
    PaymentProcessed: (payment: PaymentProcessed) =>
      // Per-key ordering: a payment is always seen after its order.
      lastSeen.get(payment.orderId) === "OrderPlaced"
        ? Effect.void
        : Ref.update(stats, (s) => ({ ...s, inventoryOrderViolations: s.inventoryOrderViolations + 1 }))
  }, { key: (e) => e.orderId })

  // ---- analytics: batched over the raw delivery stream ------------------------------------------
  const analyticsTopic = fanOut ? Topic.make(destinationOf("analytics"), OrderEvent, { key: (e) => e.orderId }) : email.topic
  const analytics = Subscriber.subscribe(analyticsTopic, { group: "analytics", prefetch: 512 }).pipe(
    Stream.groupedWithin(200, Duration.millis(50)),
    Stream.mapEffect((batch) =>
      Effect.gen(function*() {
        let revenue = 0
        let events = 0
        for (const delivery of batch) {
          if (delivery.value._tag === "Success" && delivery.value.success._tag === "PaymentProcessed") {
            if (delivery.value.success.status === "captured") revenue += delivery.value.success.amount
          }
          if (delivery.value._tag === "Success") events++
        }
        yield* Effect.forEach(batch, (delivery) => delivery.ack, { discard: true })
        yield* Ref.update(stats, (s) => ({
          ...s,
          analyticsBatches: s.analyticsBatches + 1,
          analyticsEvents: s.analyticsEvents + events,
          revenue: s.revenue + revenue
        }))
      })
    ),
    Stream.runDrain
  )

  // ---- dead letters: watch the DLQ and keep the reasons -----------------------------------------
  const deadLetters = Subscriber.subscribe(Topic.withCodec(deadLetterDestination, Codec.bytes), {
    group: "dlq-monitor"
  }).pipe(
    Stream.runForEach((delivery) =>
      Effect.andThen(
        Ref.update(stats, (s) => ({
          ...s,
          deadLettered: [...s.deadLettered, {
            group: delivery.envelope.headers[Headers.deadLetterOriginGroup] ?? "?",
            tag: delivery.envelope.headers[Headers.deadLetterErrorTag] ?? "?",
            reason: delivery.envelope.headers[Headers.deadLetterReason] ?? "?"
          }]
        })),
        delivery.ack
      )
    )
  )

  const consumers = yield* Effect.all([
    Consumer.run(email.topic, email.handler, {
      group: "email",
      concurrency: 4,
      deadLetter: deadLetterDestination,
      idempotency: true,
      retry: { schedule: Schedule.exponential(Duration.millis(5)).pipe(Schedule.upTo({ times: 4 })), isRetryable: (error) => error._tag === "SmtpUnavailable" }
    }),
    Consumer.run(inventory.topic, inventory.handler, {
      group: "inventory",
      concurrency: 8,
      deadLetter: deadLetterDestination,
      ordering: "key",
      retry: { schedule: Schedule.spaced(Duration.millis(10)).pipe(Schedule.upTo({ times: 2 })), isRetryable: (error) => error._tag !== "OutOfStock" }
    }),
    analytics,
    deadLetters
  ], { concurrency: "unbounded" }).pipe(Effect.forkChild)

  // Give every group time to register at the broker before publishing (brokers without replay).
  yield* Effect.sleep(Duration.millis(broker.capabilities.replayForNewSubscribers ? 0 : 1500))

  // ---- the order service ---------------------------------------------------------------------------
  const started = yield* Clock.currentTimeMillis
  const orders: Array<OrderPlaced> = Array.from({ length: orderCount }, (_, i) => ({
    _tag: "OrderPlaced",
    orderId: `order-${String(i).padStart(5, "0")}`,
    customerEmail: `customer${i}@example.com`,
    items: [{ sku: i % 97 === 13 ? discontinuedSku : `SKU-${i % 40}`, quantity: 1 + (i % 3) }],
    total: 10 + (i % 50)
  }))
  const messages = orders.flatMap((order, i): Array<Publisher.Message<OrderEvent>> => {
    const placed = { value: order, options: { id: `${order.orderId}-placed` } }
    const paid: Publisher.Message<OrderEvent> = {
      value: { _tag: "PaymentProcessed", orderId: order.orderId, amount: order.total, status: i % 10 === 9 ? "declined" : "captured" },
      options: { id: `${order.orderId}-paid`, causationId: `${order.orderId}-placed` }
    }
    // Every 50th order is published twice (a retrying upstream): email must not send it twice.
    return i % 50 === 0 ? [placed, placed, paid] : [placed, paid]
  })
  const publishTopics = fanOut ? [email.topic, inventory.topic, analyticsTopic] : [email.topic]
  yield* Stream.fromIterable(messages).pipe(
    Stream.grouped(100),
    Stream.runForEach((batch) => Effect.forEach(publishTopics, (topic) => Publisher.publishMessages(topic, batch), { discard: true }))
  )
  // Malformed traffic from a misbehaving producer, straight through the byte-level broker.
  const raw = (id: string, payload: string) =>
    Envelope.outgoing(new TextEncoder().encode(payload), { id, contentType: "application/json" })
  yield* Effect.forEach(publishTopics, (topic) =>
    broker.publish(topic.name, [
      raw(`malformed-json-${run}`, "{ this is not json"),
      raw(`missing-fields-${run}`, JSON.stringify({ _tag: "OrderPlaced", orderId: "x" })),
      raw(`unknown-type-${run}`, JSON.stringify({ _tag: "OrderShipped", orderId: "order-00001" }))
    ]), { discard: true })
  const publishedAt = yield* Clock.currentTimeMillis

  const duplicates = Math.ceil(orderCount / 50)
  const discontinued = orders.filter((o) => o.items.some((i) => i.sku === discontinuedSku)).length
  // email: 3 malformed/unknown; inventory: the same 3 + discontinued orders.
  const expectedDeadLetters = 3 + 3 + discontinued
  const totalEvents = messages.length
  // Brokers that deduplicate by message id (JetStream) drop the duplicates before any consumer sees them.
  const distinctEvents = totalEvents - duplicates
  const done = Ref.get(stats).pipe(
    Effect.map((s) =>
      s.emailed >= orderCount && s.analyticsEvents >= distinctEvents && s.deadLettered.length >= expectedDeadLetters
    )
  )
  const reached = yield* Effect.gen(function*() {
    while (!(yield* done)) yield* Effect.sleep(Duration.millis(50))
  }).pipe(Effect.timeout(Duration.seconds(120)), Effect.as(true), Effect.catchTag("TimeoutError", () => Effect.succeed(false)))
  if (!reached) yield* Effect.logError("the pipeline did not finish within 120 s; summary so far:")
  const finished = yield* Clock.currentTimeMillis
  yield* Fiber.interrupt(consumers)

  const s = yield* Ref.get(stats)
  const skipped = (yield* Metric.value(Telemetry.duplicates)).count
  const seconds = Math.max(0.001, (finished - started) / 1000)
  const byReason = new Map<string, number>()
  for (const d of s.deadLettered) byReason.set(`${d.group}: ${d.tag}`, (byReason.get(`${d.group}: ${d.tag}`) ?? 0) + 1)
  const lines = [
    ``,
    `Order pipeline summary (${broker.system})`,
    `  published        ${totalEvents} events (${orderCount} orders, ${duplicates} duplicate deliveries) + 3 bad messages in ${
      ((publishedAt - started) / 1000).toFixed(2)
    }s`,
    `  email            ${s.emailed} sent, ${s.emailRetries} retries, ${skipped} duplicates skipped by idempotency${
      s.analyticsEvents < totalEvents ? `, ${totalEvents - s.analyticsEvents} deduplicated by the broker` : ""
    }`,
    `  inventory        ${s.reserved} items reserved, per-order order violations: ${s.inventoryOrderViolations}`,
    `  analytics        ${s.analyticsEvents} events in ${s.analyticsBatches} batches, revenue captured ${s.revenue}`,
    `  dead-lettered    ${s.deadLettered.length}`,
    ...[...byReason.entries()].sort().map(([reason, n]) => `    ${String(n).padStart(4)} × ${reason}`),
    `  throughput       ${Math.round((totalEvents * 3) / seconds)} deliveries/s handled end to end (${seconds.toFixed(2)}s)`,
    ``
  ]
  yield* Effect.sync(() => console.log(lines.join("\n")))
  const ok = s.emailed === orderCount && s.inventoryOrderViolations === 0 && s.deadLettered.length === expectedDeadLetters
  if (!ok) return yield* new DemoFailed({ message: "the pipeline did not reach the expected outcome" })
})

NodeRuntime.runMain(
  program.pipe(
    Effect.provide(Layer.unwrap(Effect.map(brokerName, brokerLayer)))
  )
)
