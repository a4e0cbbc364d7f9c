/**
 * The @platformatic/kafka producer behind the shared sender (`../publish.ts`): an idempotent producer
 * (acks=all; the client then keeps one request in flight per broker), records built from the same fields as
 * the kafkajs backend's (`recordFields`: the same key bytes, headers and timestamp) with the partition chosen
 * by the shared murmur2 partitioner, so both backends write identical records to identical partitions.
 * After a failed send the producer is replaced (a new producer id starts fresh sequences), as with kafkajs.
 */
import { Effect, Ref } from "effect"
import { type MessageToProduce, Producer, ProduceAcks, stringSerializer } from "@platformatic/kafka"
import type { Envelope } from "@switchyard/core"
import type { KafkaConnection } from "../../KafkaConnection.ts"
import type { KafkaTopology } from "../../KafkaTopology.ts"
import { recordFields } from "../envelope.ts"
import type { ProducerDriver, Written } from "../publish.ts"
import { publishError } from "./errors.ts"
import { baseOptions } from "./options.ts"

/** A record as this producer takes it: bytes for key and value, text headers. */
export type OutRecord = MessageToProduce<Buffer, Buffer, string, string>

/** The producer of a layer: text header serialisers, idempotence as configured (default on). */
export const makeProducer = (connection: KafkaConnection["Service"], suffix = "producer"): Producer<Buffer, Buffer, string, string> =>
  new Producer<Buffer, Buffer, string, string>({
    ...baseOptions(connection.resolved, suffix),
    idempotent: connection.resolved.idempotent,
    acks: ProduceAcks.ALL,
    autocreateTopics: false,
    compression: connection.resolved.options.compression === "gzip" ? "gzip" : "none",
    serializers: { headerKey: stringSerializer, headerValue: stringSerializer }
  })

/** The record of an outgoing message for `partition` (topic set by the sender). */
export const toRecord = (message: Envelope.OutgoingMessage, partition: number): OutRecord => {
  const fields = recordFields(message)
  const key = fields.key
  return {
    topic: "",
    ...(key === null ? {} : { key: typeof key === "string" ? Buffer.from(key, "utf8") : key }),
    value: fields.value,
    headers: fields.headers,
    timestamp: BigInt(fields.timestamp),
    partition
  }
}

const close = (producer: Producer<Buffer, Buffer, string, string>) => Effect.promise(() => producer.close(true).catch(() => undefined))

const slot = Effect.fn("KafkaPlatformatic.producerSlot")(function*(
  connection: KafkaConnection["Service"],
  topology: KafkaTopology["Service"]
) {
  const producer = yield* Effect.acquireRelease(Ref.make(makeProducer(connection)), (ref) => Effect.flatMap(Ref.get(ref), close))
  const replace = Effect.gen(function*() {
    const old = yield* Ref.getAndSet(producer, makeProducer(connection))
    yield* close(old)
    // a reconnect: topics deleted meanwhile are created again on their next use
    yield* topology.reprovision
    yield* Effect.logDebug("kafka (platformatic) producer replaced after a failed send")
  })
  const send = (byTopic: ReadonlyMap<string, ReadonlyArray<OutRecord>>) =>
    Effect.flatMap(Ref.get(producer), (p) =>
      Effect.tryPromise({
        try: () => {
          const messages: Array<OutRecord> = []
          for (const [topic, records] of byTopic) for (const record of records) messages.push({ ...record, topic })
          return p.send({ messages, acks: ProduceAcks.ALL })
        },
        catch: (cause) => cause
      }).pipe(
        Effect.map((result) =>
          (result.offsets ?? []).map((o): Written => ({ topicName: o.topic, partition: o.partition, baseOffset: String(o.offset) }))
        )
      ))
  return { replace, send }
})

/** The producer driver of the @platformatic/kafka backend. */
export const producer: ProducerDriver<OutRecord> = { slot, toRecord, publishError }
