/**
 * Core benchmark on the in-memory broker.
 * 1. End-to-end throughput: publish → decode (Schema) → handler → ack through Switchyard, next to a bare
 *    JavaScript loop doing the same JSON encode/parse and Schema validation, in the same run.
 * 2. Memory under backpressure: a slow handler facing a backlog; the consumer's extra memory must not
 *    depend on the backlog size (it is bounded by `prefetch`).
 */
import { Consumer, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Effect, Fiber, References, Result, Schema } from "effect"

const Order = Schema.Struct({
  orderId: Schema.String,
  customer: Schema.String,
  items: Schema.Array(Schema.Struct({ sku: Schema.String, quantity: Schema.Int })),
  total: Schema.Number,
  note: Schema.String
})
type Order = typeof Order.Type

const makeOrder = (i: number): Order => ({
  orderId: `order-${i}`,
  customer: `customer-${i % 1000}@example.com`,
  items: [{ sku: `SKU-${i % 50}`, quantity: 1 + (i % 3) }, { sku: `SKU-${i % 7}`, quantity: 2 }],
  total: 100 + (i % 97),
  note: "x".repeat(64)
})

const N = Number(process.env.BENCH_CORE_MESSAGES ?? 100_000)

const bareLoop = () => {
  const decode = Schema.decodeUnknownResult(Order)
  const encode = Schema.encodeUnknownResult(Order)
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  let handled = 0
  const start = performance.now()
  for (let i = 0; i < N; i++) {
    const encoded = encode(makeOrder(i))
    if (Result.isFailure(encoded)) throw new Error("encode")
    const bytes = encoder.encode(JSON.stringify(encoded.success))
    const value = decode(JSON.parse(decoder.decode(bytes)))
    if (Result.isSuccess(value)) handled++
  }
  const seconds = (performance.now() - start) / 1000
  if (handled !== N) throw new Error("bare loop lost messages")
  return N / seconds
}

const topic = Topic.make("bench.orders", Order, { key: (o) => o.orderId })

const switchyard = (concurrency: number, tracing = true) =>
  Effect.gen(function*() {
    let handled = 0
    const start = performance.now()
    const consumer = yield* Consumer.run(topic, () => Effect.sync(() => handled++), {
      group: "bench",
      concurrency,
      ordering: "none",
      prefetch: 1024
    }).pipe(Effect.forkChild)
    for (let i = 0; i < N; i += 1000) {
      yield* Publisher.publishAll(topic, Array.from({ length: Math.min(1000, N - i) }, (_, j) => makeOrder(i + j)))
    }
    while (handled < N) yield* Effect.sleep("1 millis")
    const seconds = (performance.now() - start) / 1000
    yield* Fiber.interrupt(consumer)
    return N / seconds
  }).pipe(Effect.provide(Switchyard.layerMemory()), Effect.provideService(References.TracerEnabled, tracing))

const heapMb = () => {
  globalThis.gc?.()
  return process.memoryUsage().heapUsed / 1024 / 1024
}

/** Consumer-side memory with a slow handler: backlog published first, then 1.5 s of slow consumption. */
const backpressure = (backlog: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < backlog; i += 1000) {
      yield* Publisher.publishAll(topic, Array.from({ length: Math.min(1000, backlog - i) }, (_, j) => makeOrder(i + j)))
    }
    const before = heapMb()
    let peak = before
    let handled = 0
    const consumer = yield* Consumer.run(topic, () => Effect.andThen(Effect.sleep("2 millis"), Effect.sync(() => handled++)), {
      group: "slow",
      concurrency: 4,
      prefetch: 64
    }).pipe(Effect.forkChild)
    for (let t = 0; t < 15; t++) {
      yield* Effect.sleep("100 millis")
      peak = Math.max(peak, heapMb())
    }
    yield* Fiber.interrupt(consumer)
    return { backlog, handled, growthMb: peak - before }
  }).pipe(Effect.provide(Switchyard.layerMemory()))

const main = Effect.gen(function*() {
  bareLoop() // warm-up
  const bare = bareLoop()
  yield* switchyard(1) // warm-up
  const sequential = yield* switchyard(1)
  const parallel = yield* switchyard(8)
  const untraced = yield* switchyard(1, false)
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US").padStart(10)
  console.log(`in-memory end to end, ${N.toLocaleString("en-US")} messages (~300 B JSON, Schema-validated):`)
  console.log(`  bare JS loop (encode, JSON, Schema decode)   ${fmt(bare)} msg/s`)
  console.log(`  switchyard, concurrency 1                    ${fmt(sequential)} msg/s   ratio ${(sequential / bare).toFixed(2)}`)
  console.log(`  switchyard, concurrency 8, unordered         ${fmt(parallel)} msg/s   ratio ${(parallel / bare).toFixed(2)}`)
  console.log(`  switchyard, concurrency 1, tracing disabled  ${fmt(untraced)} msg/s   ratio ${(untraced / bare).toFixed(2)}`)
  const small = yield* backpressure(10_000)
  const large = yield* backpressure(100_000)
  console.log(`memory under backpressure (slow handler, prefetch 64, 1.5 s):`)
  for (const r of [small, large]) {
    console.log(`  backlog ${r.backlog.toLocaleString("en-US").padStart(7)}: consumer heap growth ${r.growthMb.toFixed(1)} MB, handled ${r.handled}`)
  }
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exit(1)
})
