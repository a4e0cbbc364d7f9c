/**
 * NATS benchmark: Switchyard's adapter vs raw nats.js, same server, same run.
 *   ./switchyard pnpm exec tsx bench/nats.ts            (NATS_URL to point elsewhere)
 * Cases: core publish→subscribe, JetStream publish (PubAck), JetStream consume+ack (read the metadata and the
 * payload bytes, ack), JetStream consume+decode+ack (the same plus JSON + Schema decoding of the payload: the
 * typed `Subscriber` against raw nats.js calling the same Schema decoder), request-reply latency.
 */
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, headers, type NatsConnection as Raw } from "@nats-io/transport-node"
import { Broker, Envelope, Subscriber, Topic } from "@switchyard/core"
import { NatsBroker, NatsConnection, NatsRpc } from "@switchyard/nats"
import { Duration, Effect, Layer, Result, Schema, Stream } from "effect"

const url = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222"
const CORE_N = Number(process.env["BENCH_CORE_N"] ?? 100_000)
const JS_N = Number(process.env["BENCH_JS_N"] ?? 60_000)
const RPC_N = Number(process.env["BENCH_RPC_N"] ?? 2_000)
const BATCH = 1_000
// A 256-byte JSON order: what the decode case decodes (the other cases only carry it).
const Order = Schema.Struct({
  orderId: Schema.String,
  customer: Schema.String,
  items: Schema.Array(Schema.Struct({ sku: Schema.String, quantity: Schema.Number, price: Schema.Number })),
  total: Schema.Number,
  note: Schema.String
})
const orderJson = (note: string) =>
  JSON.stringify({
    orderId: "o-000123",
    customer: "c-4711",
    items: [{ sku: "sku-1", quantity: 2, price: 9.5 }, { sku: "sku-2", quantity: 1, price: 23 }],
    total: 42,
    note
  })
const payload = new TextEncoder().encode(orderJson("x".repeat(256 - orderJson("").length)))
const decodeOrder = Schema.decodeUnknownResult(Order)
const textDecoder = new TextDecoder()
const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

const outgoing = (i: number): Envelope.OutgoingMessage => Envelope.outgoing(payload, { id: `b-${suffix}-${i}` })
const batches = (n: number) =>
  Array.from({ length: Math.ceil(n / BATCH) }, (_, b) =>
    Array.from({ length: Math.min(BATCH, n - b * BATCH) }, (_, i) => outgoing(b * BATCH + i)))

const rate = (n: number, ms: number) => Math.round(n / (ms / 1000))
const results: Array<{ case: string; raw: number; switchyard: number; unit: string }> = []
const record = (name: string, raw: number, switchyard: number, unit = "msg/s") => {
  results.push({ case: name, raw, switchyard, unit })
  console.log(`${name.padEnd(30)} raw ${String(raw).padStart(8)} ${unit}   switchyard ${String(switchyard).padStart(8)} ${unit}   ratio ${(switchyard / raw).toFixed(2)}`)
}
const percentile = (xs: Array<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0
}

// ---- raw nats.js ---------------------------------------------------------------------------------
// The raw side does the same work as the adapter: the same metadata travels as headers (id, timestamp,
// content type) and the consumer reads it back; only the Effect/Stream layer is missing.
const rawHeaders = (i: number) => {
  const h = headers()
  h.append("x-switchyard-id", `r-${suffix}-${i}`)
  h.append("x-switchyard-timestamp", String(Date.now()))
  h.append("content-type", "application/octet-stream")
  return h
}
let sink = 0
const rawCore = async (nc: Raw, n: number) => {
  const subject = `bench.core.raw.${suffix}`
  let got = 0
  let done!: () => void
  const finished = new Promise<void>((r) => (done = r))
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      sink += m.headers?.get("x-switchyard-id").length ?? 0
      if (++got === n) done()
    }
  })
  await nc.flush()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    nc.publish(subject, payload, { headers: rawHeaders(i) })
    if (i % BATCH === BATCH - 1) await nc.flush()
  }
  await finished
  const ms = performance.now() - t0
  sub.unsubscribe()
  return rate(n, ms)
}

const rawJsPublish = async (nc: Raw, subject: string, n: number, offset = 0) => {
  const js = jetstream(nc)
  const t0 = performance.now()
  for (let start = offset; start < offset + n; start += BATCH) {
    const pending = []
    for (let i = start; i < Math.min(offset + n, start + BATCH); i++) pending.push(js.publish(subject, payload, { msgID: `r-${suffix}-${i}`, headers: rawHeaders(i) }))
    await Promise.all(pending)
  }
  return rate(n, performance.now() - t0)
}

const rawJsConsume = async (nc: Raw, stream: string, n: number, durable: string, decode: boolean) => {
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const ci = await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, max_ack_pending: 1000 })
  const consumer = js.consumers.getConsumerFromInfo(ci)
  let got = 0
  let done!: () => void
  const finished = new Promise<void>((r) => (done = r))
  const t0 = performance.now()
  const messages = await consumer.consume({ max_messages: 1000, callback: (m) => {
    sink += (m.headers?.get("x-switchyard-id").length ?? 0) + m.info.deliveryCount + m.data.length
    if (decode) {
      const order = decodeOrder(JSON.parse(textDecoder.decode(m.data)))
      if (Result.isSuccess(order)) sink += order.success.items.length
    }
    m.ack()
    if (++got === n) done()
  } })
  await finished
  const ms = performance.now() - t0
  await messages.close()
  return rate(n, ms)
}

const rawRpc = async (nc: Raw, n: number) => {
  const subject = `bench.rpc.raw.${suffix}`
  const sub = nc.subscribe(subject, { callback: (_e, m) => { const req = m.json<{ n: number }>(); m.respond(JSON.stringify({ n: req.n * 2 })) } })
  await nc.flush()
  const lat: Array<number> = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await nc.request(subject, JSON.stringify({ n: i }), { timeout: 5000 })
    lat.push(performance.now() - t0)
  }
  sub.unsubscribe()
  return lat
}

// ---- Switchyard ----------------------------------------------------------------------------------
const time = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(self), ([d]) => Duration.toMillis(d))

const syCore = (n: number) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const destination = `bench.core.sy.${suffix}`
    const sub = yield* broker.subscribe(destination, { group: "bench", prefetch: 1000, startFrom: "latest" })
    const all = batches(n)
    const ms = yield* time(Effect.all([
      sub.deliveries.pipe(Stream.take(n), Stream.runForEach((d) => {
        sink += d.envelope.id.length
        return d.ack
      })),
      Effect.forEach(all, (batch) => broker.publish(destination, batch), { discard: true })
    ], { concurrency: 2 }))
    return rate(n, ms)
  }).pipe(Effect.scoped)

const syJsPublish = (destination: string, n: number, offset: number) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const all = batches(n).map((batch) => batch.map((m, i) => ({ ...m, id: `b-${suffix}-${offset + i}-${m.id}` })))
    if (offset === 0) yield* broker.publish(destination, [outgoing(-1)]) // provisions the stream outside the timing
    const ms = yield* time(Effect.forEach(all, (batch) => broker.publish(destination, batch), { discard: true }))
    return rate(n, ms)
  })

const syJsConsume = (destination: string, n: number, group: string) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    // Like the raw side: the consumer is created before the clock starts, and closing it is not timed.
    return yield* Effect.scoped(Effect.gen(function*() {
      const sub = yield* broker.subscribe(destination, { group, prefetch: 1000, startFrom: "earliest" })
      const ms = yield* time(sub.deliveries.pipe(Stream.take(n), Stream.runForEach((d) => {
        sink += d.envelope.id.length + d.envelope.attempt + d.envelope.payload.length
        return d.ack
      })))
      return rate(n, ms)
    }))
  })

const syJsConsumeDecoded = (destination: string, n: number, group: string) =>
  Effect.gen(function*() {
    const subscriber = yield* Subscriber.Subscriber
    const orders = Topic.make(destination, Order)
    return yield* Effect.scoped(Effect.gen(function*() {
      const deliveries = yield* subscriber.open(orders, { group, prefetch: 1000, startFrom: "earliest" })
      const ms = yield* time(deliveries.pipe(Stream.take(n), Stream.runForEach((d) => {
        sink += d.envelope.id.length + d.envelope.attempt + d.envelope.payload.length
        if (Result.isSuccess(d.value)) sink += d.value.success.items.length
        return d.ack
      })))
      return rate(n, ms)
    }))
  })

const Req = Schema.Struct({ n: Schema.Number })
const syRpc = (n: number) =>
  Effect.gen(function*() {
    const endpoint = NatsRpc.endpoint(`bench.rpc.sy.${suffix}`, Req, Req)
    yield* NatsRpc.serve(endpoint, ({ n }) => Effect.succeed({ n: n * 2 }))
    const lat: Array<number> = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      yield* NatsRpc.request(endpoint, { n: i })
      lat.push(performance.now() - t0)
    }
    return lat
  }).pipe(Effect.scoped)

// ---- run -----------------------------------------------------------------------------------------
const main = Effect.gen(function*() {
  const nc = yield* Effect.acquireRelease(Effect.promise(() => connect({ servers: url, name: "bench-raw", noAsyncTraces: true })), (nc) =>
    Effect.promise(() => nc.drain()))
  const jsm = yield* Effect.promise(() => jetstreamManager(nc))
  const rawStream = `BENCH_RAW_${suffix}`
  const rawSubject = `bench.js.raw.${suffix}`
  yield* Effect.promise(() => jsm.streams.add({ name: rawStream, subjects: [rawSubject], storage: "memory" }))
  const syDestination = `bench.js.sy.${suffix}`
  console.log(`NATS benchmark against ${url}: core ${CORE_N}, JetStream ${JS_N}, request-reply ${RPC_N} (256-byte payloads)`)

  // Warm up both paths a little.
  yield* Effect.promise(() => rawCore(nc, 5_000))
  yield* syCore(5_000).pipe(Effect.provide(core))

  // Alternating rounds per case (raw, switchyard, raw, …: three, five for the short consume cases); the best
  // round of each side counts, which filters out the noise of a shared machine.
  const rounds = [0, 1, 2]
  const consumeRounds = [0, 1, 2, 3, 4]
  let coreRaw = 0
  let coreSy = 0
  let pubRaw = 0
  let pubSy = 0
  let conRaw = 0
  let conSy = 0
  const third = Math.floor(JS_N / 3)
  for (const _ of rounds) {
    coreRaw = Math.max(coreRaw, yield* Effect.promise(() => rawCore(nc, CORE_N)))
    coreSy = Math.max(coreSy, yield* syCore(CORE_N).pipe(Effect.provide(core)))
  }
  record("core publish→subscribe", coreRaw, coreSy)
  for (const r of rounds) {
    pubRaw = Math.max(pubRaw, yield* Effect.promise(() => rawJsPublish(nc, rawSubject, third, r * third)))
    pubSy = Math.max(pubSy, yield* syJsPublish(syDestination, third, r * third).pipe(Effect.provide(js)))
  }
  record("JetStream publish (PubAck)", pubRaw, pubSy)
  const consumeN = 3 * third
  for (const r of consumeRounds) {
    conRaw = Math.max(conRaw, yield* Effect.promise(() => rawJsConsume(nc, rawStream, consumeN, `raw${r}`, false)))
    conSy = Math.max(conSy, yield* syJsConsume(syDestination, consumeN, `sy${r}`).pipe(Effect.provide(js)))
  }
  record("JetStream consume+ack", conRaw, conSy)
  let decRaw = 0
  let decSy = 0
  for (const r of consumeRounds) {
    decRaw = Math.max(decRaw, yield* Effect.promise(() => rawJsConsume(nc, rawStream, consumeN, `rawdec${r}`, true)))
    decSy = Math.max(decSy, yield* syJsConsumeDecoded(syDestination, consumeN, `sydec${r}`).pipe(Effect.provide(typed)))
  }
  record("JetStream consume+decode+ack", decRaw, decSy)
  // Latency: alternating rounds too; the best p50 and the best p99 of each side count.
  const latency = { raw50: Infinity, raw99: Infinity, sy50: Infinity, sy99: Infinity }
  for (const _ of rounds) {
    const rawLat = yield* Effect.promise(() => rawRpc(nc, RPC_N))
    latency.raw50 = Math.min(latency.raw50, percentile(rawLat, 0.5))
    latency.raw99 = Math.min(latency.raw99, percentile(rawLat, 0.99))
    const syLat = yield* syRpc(RPC_N).pipe(Effect.provide(conn))
    latency.sy50 = Math.min(latency.sy50, percentile(syLat, 0.5))
    latency.sy99 = Math.min(latency.sy99, percentile(syLat, 0.99))
  }
  const fmt = (x: number) => Number(x.toFixed(3))
  record("request-reply p50 (ms)", fmt(latency.raw50), fmt(latency.sy50), "ms")
  record("request-reply p99 (ms)", fmt(latency.raw99), fmt(latency.sy99), "ms")

  yield* Effect.promise(() => jsm.streams.delete(rawStream))
  const syStream = yield* Effect.promise(() => jsm.streams.find(syDestination))
  yield* Effect.promise(() => jsm.streams.delete(syStream))
  console.log(`(ratio = switchyard / raw; for latency lower is better)${sink < 0 ? "" : ""}`)
})

const conn = NatsConnection.layer({ servers: url, name: "bench-switchyard" })
const core = NatsBroker.layerCore({ connection: { servers: url, name: "bench-switchyard-core" } })
const js = NatsBroker.layer({ connection: { servers: url, name: "bench-switchyard-js" }, defaultStream: { storage: "memory" } })
const typed = Subscriber.layer.pipe(Layer.provideMerge(js))

Effect.runPromise(main.pipe(Effect.scoped, Effect.timeout("90 seconds"))).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
