/**
 * Kafka benchmark: Switchyard's Kafka adapter vs raw kafkajs doing the same work in the same run.
 *
 *   ./switchyard pnpm exec tsx bench/kafka.ts          (starts an embedded broker, or uses KAFKA_BROKERS)
 *
 * - produce: N × 256 B messages, batches of 500, 4 batches in flight, idempotent producer, acks=all
 * - consume+commit: read the N messages back in a new group, ack/resolve each, commit
 * - memory under backpressure: a large backlog read by a slow handler; RSS must not grow with the backlog
 *
 * Bounded in count and time (well under 60 s on a 2-core machine).
 */
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import { Broker, Envelope } from "@switchyard/core"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import { KafkaBroker, KafkaTopology } from "@switchyard/kafka"
import { EmbeddedKafka } from "@switchyard/kafka/testing"

const N = Number(process.env["BENCH_KAFKA_MESSAGES"] ?? 50_000)
const BATCH = 500
const IN_FLIGHT = 4
const PARTITIONS = 4
const payload = new Uint8Array(256).fill(120)

const suffix = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
const rss = () => process.memoryUsage().rss / 1024 / 1024

const outgoing = (i: number): Envelope.OutgoingMessage => Envelope.outgoing(payload, { id: `b-${i}`, key: `k-${i % 1024}` })

const batches = (n: number) => Array.from({ length: Math.ceil(n / BATCH) }, (_, b) =>
  Array.from({ length: Math.min(BATCH, n - b * BATCH) }, (_, i) => outgoing(b * BATCH + i)))

const main = Effect.gen(function*() {
  const external = process.env["KAFKA_BROKERS"]
  const bootstrap = external !== undefined && external !== ""
    ? external.split(",")[0]!
    : (yield* EmbeddedKafka.start()).bootstrap
  const ctx = yield* buildBroker(bootstrap)
  const broker = ctx.broker
  const admin = ctx.admin
  const kafka = new Kafka({ clientId: "bench-raw", brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const rawProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 5, createPartitioner: Partitioners.DefaultPartitioner })
  yield* Effect.promise(() => rawProducer.connect())
  yield* Effect.addFinalizer(() => Effect.promise(() => rawProducer.disconnect()))
  const work = batches(N)
  const rawBatches = work.map((batch) =>
    batch.map((m) => ({
      key: m.key ?? null,
      value: Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
      headers: { "x-switchyard-id": m.id, "content-type": m.contentType },
      timestamp: String(m.timestamp)
    }))
  )

  const newTopic = (label: string) =>
    Effect.gen(function*() {
      const topic = `bench.${label}.${suffix()}`
      yield* admin.createTopics([{ topic, partitions: PARTITIONS }])
      yield* admin.ensureTopic(topic)
      return topic
    })

  const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const start = performance.now()
      yield* effect
      return (performance.now() - start) / 1000
    })

  // ---- produce ----------------------------------------------------------------------------------
  const produceRaw = (topic: string) =>
    Effect.forEach(rawBatches, (messages) => Effect.promise(() => rawProducer.send({ topic, messages, acks: -1 })), {
      concurrency: IN_FLIGHT,
      discard: true
    })
  const produceAdapter = (topic: string) =>
    Effect.forEach(work, (messages) => broker.publish(topic, messages), { concurrency: IN_FLIGHT, discard: true })

  // ---- consume + commit ---------------------------------------------------------------------------
  // Both timings include the same setup: connect, subscribe, the group join/sync and the first fetch
  // (the adapter's `subscribe` does all of it before returning), then reading and committing N messages.
  // Leaving the group and disconnecting are not timed on either side.
  const consumeRaw = (topic: string, maxWaitTimeInMs = 25 /* the adapter's default */) =>
    Effect.gen(function*() {
      const consumer = kafka.consumer({ groupId: `raw-${suffix()}`, maxWaitTimeInMs })
      let seen = 0
      const seconds = yield* timed(Effect.gen(function*() {
        yield* Effect.promise(async () => {
          await consumer.connect()
          await consumer.subscribe({ topics: [topic], fromBeginning: true })
        })
        yield* Effect.callback<void>((resume) => {
          void consumer.run({
            autoCommit: true,
            autoCommitInterval: 100,
            eachBatchAutoResolve: false,
            eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
              for (const m of batch.messages) {
                resolveOffset(m.offset)
                if (++seen === N) resume(Effect.void)
              }
              await commitOffsetsIfNecessary()
            }
          })
        })
      }))
      yield* Effect.promise(() => consumer.disconnect())
      return seconds
    })
  const consumeAdapter = (topic: string) =>
    Effect.scoped(timed(Effect.gen(function*() {
      const sub = yield* broker.subscribe(topic, { group: `sy-${suffix()}`, prefetch: Number(process.env["BENCH_PREFETCH"] ?? 1000), startFrom: "earliest" })
      yield* sub.deliveries.pipe(Stream.take(N), Stream.runForEach((d) => d.ack))
    })))

  // warm-up (JIT, connections, metadata)
  const warm = yield* newTopic("warm")
  yield* produceRaw(warm)
  yield* produceAdapter(warm)

  const results: Record<string, { raw: Array<number>; adapter: Array<number> }> = {
    produce: { raw: [], adapter: [] },
    "consume+commit": { raw: [], adapter: [] },
    "consume (raw 100ms wait)": { raw: [], adapter: [] }
  }
  for (let round = 0; round < 2; round++) {
    const t1 = yield* newTopic("raw")
    const t2 = yield* newTopic("sy")
    results["produce"]!.raw.push(N / (yield* timed(produceRaw(t1))))
    results["produce"]!.adapter.push(N / (yield* timed(produceAdapter(t2))))
    results["consume+commit"]!.raw.push(N / (yield* consumeRaw(t1)))
    results["consume+commit"]!.adapter.push(N / (yield* consumeAdapter(t2)))
    // reference: raw kafkajs with a longer fetch wait (it never pauses, so it does not pay for the wait)
    results["consume (raw 100ms wait)"]!.raw.push(N / (yield* consumeRaw(t1, 100)))
    results["consume (raw 100ms wait)"]!.adapter.push(results["consume+commit"]!.adapter[round]!)
  }
  console.log(`\nKafka (kafkajs 2.2.4, embedded Kafka ${EmbeddedKafka.defaultVersion}), ${N} × 256 B, ${PARTITIONS} partitions, best of 2 rounds`)
  for (const [name, r] of Object.entries(results)) {
    const raw = Math.max(...r.raw)
    const adapter = Math.max(...r.adapter)
    console.log(
      `${name.padEnd(26)} raw kafkajs ${raw.toFixed(0).padStart(7)} msg/s   switchyard ${adapter.toFixed(0).padStart(7)} msg/s   ratio ${(adapter / raw).toFixed(2)}`
    )
  }

  // ---- memory under backpressure -----------------------------------------------------------------
  const backlog = yield* newTopic("backlog")
  const backlogSize = 4 * N
  for (let i = 0; i < 4; i++) yield* produceRaw(backlog)
  const samples: Array<number> = []
  let handled = 0
  global.gc?.()
  const before = rss()
  yield* Effect.scoped(Effect.gen(function*() {
    const sub = yield* broker.subscribe(backlog, { group: `mem-${suffix()}`, prefetch: 100, startFrom: "earliest" })
    yield* sub.deliveries.pipe(
      Stream.runForEach((d) =>
        Effect.sleep("1 millis").pipe(
          Effect.andThen(d.ack),
          Effect.andThen(Effect.sync(() => {
            if (++handled % 500 === 0) samples.push(rss())
          }))
        )
      ),
      Effect.timeoutOrElse({ duration: "6 seconds", orElse: () => Effect.void })
    )
  }))
  console.log(
    `backpressure     backlog ${backlogSize} msgs (${(backlogSize * 256 / 1024 / 1024).toFixed(0)} MiB payload), slow handler (1 ms), prefetch 100: ` +
      `handled ${handled} in 6 s; RSS before ${before.toFixed(0)} MiB, during min ${Math.min(...samples).toFixed(0)} / max ${Math.max(...samples).toFixed(0)} MiB, ` +
      `growth first→last sample ${(samples[samples.length - 1]! - samples[0]!).toFixed(1)} MiB`
  )
})

const buildBroker = (bootstrap: string) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ctx = yield* Layer.buildWithScope(
      KafkaBroker.layer({ brokers: [bootstrap], clientId: "bench-switchyard", consumer: {} }),
      scope
    )
    return { broker: Context.get(ctx, Broker.Broker), admin: Context.get(ctx, KafkaTopology.KafkaTopology) }
  })

const scope = Effect.runSync(Scope.make())
Effect.runPromise(main.pipe(Scope.provide(scope), Effect.ensuring(Scope.close(scope, Exit.void)))).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
