/**
 * RabbitMQ: Switchyard's adapter vs raw amqplib, same broker, same run.
 *
 *   ./switchyard pnpm exec tsx bench/amqp.ts            (BENCH_AMQP_N=20000 by default)
 *
 * 1. confirmed publish throughput (persistent, batches of 1000, confirms awaited per batch)
 * 2. consume + ack throughput (prefetch 1000) from a pre-filled queue
 * 3. end-to-end latency (publish -> delivery) at a fixed moderate rate, p50 / p99
 *
 * Each throughput figure is the best of up to three alternating rounds (the machine is shared and noisy).
 * Both sides use TCP_NODELAY (the adapter sets it on its connection).
 */
import * as amqp from "amqplib"
import type { ConfirmChannel } from "amqplib"
import { Broker } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import { AmqpBroker } from "@switchyard/amqp"
import { Context, Effect, Fiber, Layer, Redacted, Schedule, Stream } from "effect"

const URL_ = process.env["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672"
const N = Number(process.env["BENCH_AMQP_N"] ?? "20000")
const BATCH = 1000
const PREFETCH = 1000
const SIZE = 256
const RATE = 1000 // messages per second for the latency run
const LATENCY_SECONDS = 3
const payload = new Uint8Array(SIZE).fill(120)
const run = `bench.amqp.${Date.now().toString(36)}`

const message = (i: number, timestamp = Date.now()): Envelope.OutgoingMessage => ({
  id: `m-${i}`,
  key: undefined,
  headers: {},
  timestamp,
  contentType: "application/octet-stream",
  payload,
  correlationId: undefined,
  causationId: undefined
})

// ------------------------------------------------------------------ raw amqplib
const rawPublishBatch = (ch: ConfirmChannel, exchange: string, from: number, count: number, stamp = false) =>
  new Promise<void>((resolve, reject) => {
    let remaining = count
    let i = 0
    const buffer = Buffer.from(payload)
    const pump = () => {
      while (i < count) {
        const n = from + i++
        const ok = ch.publish(exchange, "", buffer, {
          persistent: true,
          mandatory: true,
          messageId: `m-${n}`,
          contentType: "application/octet-stream",
          // the same metadata the adapter sends for an envelope (ms timestamp header + seconds property)
          timestamp: Math.floor(Date.now() / 1000),
          headers: { "x-switchyard-timestamp": String(stamp ? Date.now() : 0) }
        }, (err: unknown) => {
          if (err) return reject(err)
          if (--remaining === 0) resolve()
        })
        if (!ok) return void ch.once("drain", pump)
      }
    }
    pump()
  })

const setup = async (ch: amqp.Channel, exchange: string, queue: string) => {
  await ch.assertExchange(exchange, "topic", { durable: true })
  await ch.assertQueue(queue, { durable: true })
  await ch.bindQueue(queue, exchange, "#")
}

const rawPublish = async (conn: amqp.ChannelModel, exchange: string) => {
  const ch = await conn.createConfirmChannel()
  const start = performance.now()
  for (let i = 0; i < N; i += BATCH) await rawPublishBatch(ch, exchange, i, Math.min(BATCH, N - i))
  const ms = performance.now() - start
  await ch.close()
  return (N / ms) * 1000
}

const rawConsume = async (conn: amqp.ChannelModel, queue: string) => {
  const ch = await conn.createChannel()
  await ch.prefetch(PREFETCH)
  const start = performance.now()
  await new Promise<void>((resolve) => {
    let got = 0
    void ch.consume(queue, (msg) => {
      if (msg === null) return
      ch.ack(msg)
      if (++got === N) resolve()
    })
  })
  const ms = performance.now() - start
  await ch.close()
  return (N / ms) * 1000
}

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

const rawLatency = async (conn: amqp.ChannelModel, exchange: string, queue: string) => {
  const pub = await conn.createConfirmChannel()
  const sub = await conn.createChannel()
  await sub.prefetch(PREFETCH)
  const latencies: Array<number> = []
  const total = RATE * LATENCY_SECONDS
  const done = new Promise<void>((resolve) => {
    void sub.consume(queue, (msg) => {
      if (msg === null) return
      latencies.push(Date.now() - Number(msg.properties.headers?.["x-switchyard-timestamp"]))
      sub.ack(msg)
      if (latencies.length === total) resolve()
    })
  })
  // pacing: 10 messages every 10 ms
  await Effect.runPromise(
    Stream.range(0, total / 10 - 1).pipe(
      Stream.schedule(Schedule.spaced("10 millis")),
      Stream.runForEach((tick) => Effect.promise(() => rawPublishBatch(pub, exchange, tick * 10, 10, true)))
    )
  )
  await done
  await pub.close()
  await sub.close()
  latencies.sort((a, b) => a - b)
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
}

// ------------------------------------------------------------------ switchyard
const syPublish = (broker: Broker.BrokerShape, destination: string) =>
  Effect.gen(function*() {
    const messages = Array.from({ length: N }, (_, i) => message(i))
    const start = performance.now()
    for (let i = 0; i < N; i += BATCH) yield* broker.publish(destination, messages.slice(i, i + BATCH))
    return (N / (performance.now() - start)) * 1000
  })

const syConsume = (broker: Broker.BrokerShape, destination: string, group: string) =>
  Effect.scoped(Effect.gen(function*() {
    const start = performance.now()
    const sub = yield* broker.subscribe(destination, { group, prefetch: PREFETCH, startFrom: "earliest" })
    yield* sub.deliveries.pipe(Stream.take(N), Stream.runForEach((d) => d.ack))
    return (N / (performance.now() - start)) * 1000
  }))

const syLatency = (broker: Broker.BrokerShape, destination: string, group: string) =>
  Effect.scoped(Effect.gen(function*() {
    const total = RATE * LATENCY_SECONDS
    const sub = yield* broker.subscribe(destination, { group, prefetch: PREFETCH, startFrom: "earliest" })
    const latencies: Array<number> = []
    const consumer = yield* sub.deliveries.pipe(
      Stream.take(total),
      Stream.runForEach((d) => Effect.sync(() => latencies.push(Date.now() - d.envelope.timestamp)).pipe(Effect.andThen(d.ack))),
      Effect.forkChild
    )
    yield* Stream.range(0, total / 10 - 1).pipe(
      Stream.schedule(Schedule.spaced("10 millis")),
      Stream.runForEach((tick) =>
        broker.publish(destination, Array.from({ length: 10 }, (_, i) => message(tick * 10 + i, Date.now())))
      )
    )
    yield* Fiber.join(consumer)
    latencies.sort((a, b) => a - b)
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
  }))

const fmt = (n: number) => Math.round(n).toLocaleString("en-US").padStart(8)

const main = Effect.gen(function*() {
  const services = yield* Layer.build(AmqpBroker.layer({ url: Redacted.make(URL_), connectionName: "bench" }))
  const broker = Context.get(services, Broker.Broker)
  const conn = yield* Effect.acquireRelease(Effect.promise(() => amqp.connect(URL_, { noDelay: true })), (c) => Effect.promise(() => c.close()))
  const admin = yield* Effect.promise(() => conn.createChannel())
  const results = { rawPub: 0, syPub: 0, rawCon: 0, syCon: 0 }
  const cpu = { rawPub: Infinity, syPub: Infinity, rawCon: Infinity, syCon: Infinity }
  // runs one measurement, keeping the best throughput and the lowest CPU time per message (µs)
  const measure = <E, R>(name: keyof typeof results, effect: Effect.Effect<number, E, R>) =>
    Effect.gen(function*() {
      const before = process.cpuUsage()
      const rate = yield* effect
      const used = process.cpuUsage(before)
      results[name] = Math.max(results[name], rate)
      cpu[name] = Math.min(cpu[name], (used.user + used.system) / N)
    })
  const deadline = Date.now() + 50_000
  for (let round = 0; round < 3 && Date.now() < deadline - 20_000; round++) {
    // publish: each side publishes N into its own destination with one bound queue (the group queue)
    const rawDest = `${run}.raw.${round}`
    const syDest = `${run}.sy.${round}`
    yield* Effect.promise(() => setup(admin, rawDest, `${rawDest}.g`))
    yield* Effect.scoped(broker.subscribe(syDest, { group: "g", prefetch: 1, startFrom: "earliest" })) // provisions the group queue
    const rawPub = measure("rawPub", Effect.promise(() => rawPublish(conn, rawDest)))
    const syPub = measure("syPub", syPublish(broker, syDest))
    const rawCon = measure("rawCon", Effect.promise(() => rawConsume(conn, `${rawDest}.g`)))
    const syCon = measure("syCon", syConsume(broker, syDest, "g"))
    // alternate who goes first: the machine is shared and the broker's disk is noisy
    if (round % 2 === 0) yield* rawPub.pipe(Effect.andThen(syPub), Effect.andThen(rawCon), Effect.andThen(syCon))
    else yield* syPub.pipe(Effect.andThen(rawPub), Effect.andThen(syCon), Effect.andThen(rawCon))
    yield* Effect.promise(async () => {
      await admin.deleteQueue(`${rawDest}.g`)
      await admin.deleteQueue(`${syDest}.g`)
      await admin.deleteExchange(rawDest)
      await admin.deleteExchange(syDest)
    })
  }
  const latDest = `${run}.lat`
  yield* Effect.promise(() => setup(admin, `${latDest}.raw`, `${latDest}.raw.g`))
  const raw = yield* Effect.promise(() => rawLatency(conn, `${latDest}.raw`, `${latDest}.raw.g`))
  const sy = yield* syLatency(broker, `${latDest}.sy`, "g")
  yield* Effect.promise(async () => {
    await admin.deleteQueue(`${latDest}.raw.g`)
    await admin.deleteQueue(`${latDest}.sy.g`)
    for (const e of [`${latDest}.raw`, `${latDest}.sy`]) await admin.deleteExchange(e)
  })
  console.log(`RabbitMQ bench: ${N} x ${SIZE} B persistent messages, batches of ${BATCH}, prefetch ${PREFETCH}`)
  console.log(`                          raw amqplib   switchyard   ratio   (CPU µs/msg raw / switchyard)`)
  console.log(`confirmed publish msg/s  ${fmt(results.rawPub)}     ${fmt(results.syPub)}     ${(results.syPub / results.rawPub).toFixed(2)}    (${cpu.rawPub.toFixed(1)} / ${cpu.syPub.toFixed(1)})`)
  console.log(`consume+ack msg/s        ${fmt(results.rawCon)}     ${fmt(results.syCon)}     ${(results.syCon / results.rawCon).toFixed(2)}    (${cpu.rawCon.toFixed(1)} / ${cpu.syCon.toFixed(1)})`)
  console.log(`latency @${RATE}/s p50 ms    ${String(raw.p50).padStart(8)}     ${String(sy.p50).padStart(8)}`)
  console.log(`latency @${RATE}/s p99 ms    ${String(raw.p99).padStart(8)}     ${String(sy.p99).padStart(8)}`)
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.timeout("90 seconds"))).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error("bench failed:", error)
    process.exit(1)
  }
)
