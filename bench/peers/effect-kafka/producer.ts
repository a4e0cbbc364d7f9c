/**
 * The effect-kafka side of the peer benchmark (`bench/typed/drivers/effectKafka.ts`): what an Effect user
 * writes with effect-kafka 0.9 (Effect 3, its own install in this directory) to publish the same orders to
 * the same 4-partition topic as the Switchyard side: `KafkaJS.layer` + `Producer.layer` with kafkajs's
 * idempotent producer (acks=all, 5 in flight, the default murmur2 partitioner, the customer as key, as the
 * raw kafkajs side), the JSON encoding done by the caller (effect-kafka has no codec), and
 * - publish ×64: `Effect.forEach(orders, (o) => producer.send(…one message…), { concurrency: 64 })`;
 * - publishAll ×1000: one `producer.send` of 1,000 messages after another.
 */
import { Effect, Layer } from "effect"
import { Producer } from "effect-kafka"
import { KafkaJS } from "effect-kafka/KafkaJS"
import { logLevel, Partitioners } from "kafkajs"
import { chunks, Meter, orders, rawEncode } from "../../typed/common.ts"
import type { Order, WorkerInput, WorkerResult } from "../../typed/spec.ts"

export const run = (input: WorkerInput): Promise<WorkerResult> => {
  const spec = input.case
  const topic = input.destination
  const record = (order: Order) => ({ key: order.customer, value: rawEncode(order) })
  const meter = new Meter()
  let published = 0
  const publishPhase = (values: ReadonlyArray<Order>) =>
    Effect.flatMap(Producer.Producer, (producer) =>
      spec.kind === "publish"
        ? Effect.forEach(values, (order) =>
          Effect.map(producer.send({ topic, messages: [record(order)] }), () => {
            published++
          }), { concurrency: spec.fibers ?? 64, discard: true })
        : Effect.forEach(chunks(values, spec.batch ?? 1_000), (batch) =>
          Effect.map(producer.send({ topic, messages: batch.map(record) }), () => {
            published += batch.length
          }), { discard: true }))
  const program = Effect.gen(function*() {
    yield* publishPhase(orders(0, input.warmup))
    const timed = orders(input.warmup, input.n)
    meter.start()
    yield* publishPhase(timed)
    meter.stop()
    return {
      elapsedMs: meter.elapsedMs,
      cpuMicros: meter.cpuMicros,
      maxRssKiB: 0,
      published,
      consumed: 0
    } satisfies WorkerResult
  })
  // passed through to kafkajs's `producer()` (effect-kafka's option type does not list `createPartitioner`)
  const producerOptions = { idempotent: true, maxInFlightRequests: 5, createPartitioner: Partitioners.DefaultPartitioner }
  const ProducerLive = Producer.layer(producerOptions)
  const KafkaLive = KafkaJS.layer({ clientId: "bench-effect-kafka", brokers: [input.env["bootstrap"]!], logLevel: logLevel.NOTHING })
  return Effect.runPromise(Effect.scoped(program.pipe(Effect.provide(Layer.provide(ProducerLive, KafkaLive)))))
}
