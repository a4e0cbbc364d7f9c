/**
 * Kafka. Broker: embedded Kafka (`EmbeddedKafka.start()`, as bench/kafka.ts; or KAFKA_BROKERS), started
 * once by the orchestrator; topics of 4 partitions are created before each worker starts.
 * Switchyard: `KafkaBroker.layer({ brokers })`, or with `BENCH_KAFKA_BACKEND=platformatic` the
 * @platformatic/kafka backend, `KafkaPlatformatic.layer({ brokers })` (the raw side stays kafkajs). Raw: kafkajs — an idempotent producer (acks=all,
 * maxInFlightRequests 5, the default murmur2 partitioner, the customer as record key), `send` of one message
 * per call or one `send` per batch; a consumer group with `eachBatch` (maxWaitTime 25 ms like the adapter),
 * the handler per message with the case's concurrency, offsets resolved once the batch's handlers are done,
 * commits every 100 ms or 1000 messages (the adapter's defaults) and a final commit. kafkajs has no bound
 * like `prefetch`: the raw consumer holds one fetched batch at a time.
 * Broker-side check: the topic's end offsets sum to what the worker published; for pipelines the group's
 * committed offsets too.
 */
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type Producer } from "kafkajs"
import { EmbeddedKafka } from "@switchyard/kafka/testing"
import { KafkaBroker, KafkaPlatformatic } from "@switchyard/kafka"
import { Effect, Exit, Scope } from "effect"
import { rawEncode } from "../common.ts"
import { type Driver, expectEqual } from "../driver.ts"
import { runRaw } from "../raw.ts"
import type { Order, WorkerInput } from "../spec.ts"
import { runTyped } from "../typed.ts"

const PARTITIONS = 4

/** Which backend the typed side runs on (`BENCH_KAFKA_BACKEND`: `kafkajs`, the default, or `platformatic`). */
const backend = process.env["BENCH_KAFKA_BACKEND"] === "platformatic" ? "platformatic" : "kafkajs"

const record = (order: Order) => ({ key: order.customer, value: rawEncode(order) })

const raw = async (input: WorkerInput) => {
  const kafka = new Kafka({ clientId: "bench-raw", brokers: [input.env["bootstrap"]!], logLevel: logLevel.NOTHING })
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5, createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const topic = input.destination
  let consumer: Consumer | undefined
  const resolved = new Map<number, string>()
  return runRaw(input, {
    publish: async (order) => void (await producer.send({ topic, acks: -1, messages: [record(order)] })),
    publishBatch: async (batch) => void (await producer.send({ topic, acks: -1, messages: batch.map(record) })),
    subscribe: async (_prefetch, onMessage) => {
      const c = kafka.consumer({ groupId: input.group, maxWaitTimeInMs: 25 })
      consumer = c
      await c.connect()
      await c.subscribe({ topics: [topic], fromBeginning: true })
      await c.run({
        autoCommit: true,
        autoCommitInterval: 100,
        autoCommitThreshold: 1000,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, isRunning }) => {
          const done: Array<Promise<void>> = []
          for (const m of batch.messages) {
            if (!isRunning()) break
            done.push(new Promise<void>((settle) => onMessage(m.value!, settle)))
          }
          await Promise.all(done)
          const last = batch.messages[done.length - 1]
          if (last !== undefined) {
            resolveOffset(last.offset)
            resolved.set(batch.partition, last.offset)
          }
          await commitOffsetsIfNecessary()
        }
      })
    },
    unsubscribe: async () => {
      if (consumer === undefined) return
      const offsets = [...resolved].map(([partition, offset]) => ({ topic, partition, offset: String(BigInt(offset) + 1n) }))
      if (offsets.length > 0) await consumer.commitOffsets(offsets)
      await consumer.disconnect()
    },
    close: () => producer.disconnect()
  })
}

let admin: Admin | undefined

const sum = (xs: ReadonlyArray<{ offset: string }>) => xs.reduce((acc, x) => acc + Math.max(0, Number(x.offset)), 0)

export const driver: Driver = {
  name: "kafka",
  title: `Kafka (typed: ${backend === "platformatic" ? "@platformatic/kafka" : "kafkajs"}, ${PARTITIONS} partitions)`,
  defaultN: 10_000,
  rawLabel: "kafkajs (idempotent acks=all producer, eachBatch consumer, commits)",
  setup: async () => {
    const external = process.env["KAFKA_BROKERS"]
    const scope = Effect.runSync(Scope.make())
    const bootstrap = external !== undefined && external !== ""
      ? external.split(",")[0]!
      : (await Effect.runPromise(Scope.provide(EmbeddedKafka.start(), scope))).bootstrap
    const kafka = new Kafka({ clientId: "bench-admin", brokers: [bootstrap], logLevel: logLevel.NOTHING })
    admin = kafka.admin()
    await admin.connect()
    return {
      env: { bootstrap },
      close: async () => {
        await admin!.disconnect()
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
  },
  prepare: async (input) => {
    const a = admin!
    const topic = input.destination
    await a.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true })
    return async (result) => {
      const expected = input.warmup + input.n
      expectEqual("messages confirmed by the worker", result.published, expected)
      const ends = await a.fetchTopicOffsets(topic)
      expectEqual(`end offsets of ${topic}`, ends.reduce((acc, p) => acc + Number(p.high), 0), expected)
      if (input.case.kind !== "pipeline") return `topic end offsets sum to ${expected}`
      expectEqual("distinct orders handled", result.consumed, expected)
      const [committed] = await a.fetchOffsets({ groupId: input.group, topics: [topic] })
      expectEqual(`committed offsets of group ${input.group}`, sum(committed?.partitions ?? []), expected)
      return `end offsets and group commits sum to ${expected}`
    }
  },
  typed: (input) =>
    runTyped(
      input,
      backend === "platformatic"
        ? KafkaPlatformatic.layer({ brokers: [input.env["bootstrap"]!], clientId: "bench-typed" })
        : KafkaBroker.layer({ brokers: [input.env["bootstrap"]!], clientId: "bench-typed" })
    ),
  raw
}
