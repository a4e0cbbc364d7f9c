/**
 * The Kafka publish path: one idempotent (acks=all) `sendBatch` at a time, coalescing every publish that
 * arrived meanwhile; receipts carry partition and offset.
 *
 * kafkajs rolls an idempotent producer's sequence numbers back when a produce request fails, even when the
 * broker did write it (a connection lost mid-request). The next, different batch then reuses those sequence
 * numbers, the broker takes it for a duplicate, confirms it with the earlier batch's offset and never stores
 * it: a confirmed message is lost. So one sender fiber sends at a time, and after a failed send it replaces
 * the producer (a new producer id starts fresh sequences) before sending anything else; the topology is
 * provisioned again after that reconnect.
 *
 * kafkajs also silently leaves out records for a partition its own (older) metadata does not know yet, and
 * answers without them. Partitions missing from the answer are sent again once with a fresh producer (fresh
 * metadata); only then is their publish failed.
 */
import { Cause, Deferred, Effect, Exit, Queue, Ref } from "effect"
import type { Scope } from "effect"
import { Errors } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import { type Message, Partitioners, type PartitionMetadata, type Producer } from "kafkajs"
import type { KafkaConnection } from "../KafkaConnection.ts"
import type { KafkaTopology } from "../KafkaTopology.ts"
import { recordKey, toRecord } from "./envelope.ts"
import { publishError } from "./errors.ts"

/** One publish call waiting for the sender; `R` is the client's record type. */
interface PendingSend<R> {
  readonly destination: string
  readonly messages: ReadonlyArray<Envelope.OutgoingMessage>
  readonly records: ReadonlyArray<R>
  readonly partitions: ReadonlyArray<number>
  readonly done: Deferred.Deferred<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>
}

/** What a send reports per partition written (kafkajs's `RecordMetadata` is one). */
export interface Written {
  readonly topicName: string
  readonly partition: number
  readonly baseOffset?: string | undefined
}

/**
 * A client's producer as the sender uses it: `send` writes records per topic (one request at a time, acks=all)
 * and reports the partitions written; `replace` swaps the producer for a fresh one (new producer id) after a
 * failed send.
 */
export interface ProducerSlot<R> {
  readonly send: (byTopic: ReadonlyMap<string, ReadonlyArray<R>>) => Effect.Effect<ReadonlyArray<Written>, unknown>
  readonly replace: Effect.Effect<void>
}

/** A client's producer: its slot (in the current scope) and how an outgoing message becomes its record. */
export interface ProducerDriver<R> {
  readonly slot: (
    connection: KafkaConnection["Service"],
    topology: KafkaTopology["Service"]
  ) => Effect.Effect<ProducerSlot<R>, never, Scope.Scope>
  readonly toRecord: (message: Envelope.OutgoingMessage, partition: number) => R
  /** The `PublishError` of a failed send, classified from the client's own errors. */
  readonly publishError: (destination: string, cause: unknown) => Errors.PublishError
}

/** The publish function of a broker. */
export type Publish = (
  destination: string,
  messages: ReadonlyArray<Envelope.OutgoingMessage>
) => Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>

const slotKey = (topic: string, partition: number) => `${topic}\u0000${partition}`

/** Receipts in send order: each partition's messages take consecutive offsets from its base offset. */
const receiptsOf = <R>(pending: PendingSend<R>, next: Map<string, number>): ReadonlyArray<Envelope.PublishReceipt> =>
  pending.messages.map((message, i): Envelope.PublishReceipt => {
    const partition = pending.partitions[i]!
    const slot = slotKey(pending.destination, partition)
    const offset = next.get(slot)
    if (offset !== undefined) next.set(slot, offset + 1)
    return {
      id: message.id,
      coordinates: {
        destination: pending.destination,
        lane: String(partition),
        partition,
        ...(offset !== undefined ? { offset: String(offset) } : {})
      }
    }
  })

/** Settles a group: receipts, except the `failed` ones (some of their records were not written). */
const settleSent = <R>(
  group: ReadonlyArray<PendingSend<R>>,
  metadata: ReadonlyArray<Written>,
  failed: ReadonlySet<PendingSend<R>> = new Set(),
  error?: (destination: string) => Errors.PublishError
) => {
  const next = new Map<string, number>()
  for (const m of metadata) {
    if (m.baseOffset !== undefined) next.set(slotKey(m.topicName, m.partition), Number(m.baseOffset))
  }
  for (const pending of group) {
    const receipts = receiptsOf(pending, next)
    Deferred.doneUnsafe(
      pending.done,
      failed.has(pending) && error !== undefined ? Exit.fail(error(pending.destination)) : Exit.succeed(receipts)
    )
  }
}

const failGroup = <R>(group: ReadonlyArray<PendingSend<R>>, error: (destination: string) => Errors.PublishError) => {
  for (const pending of group) Deferred.doneUnsafe(pending.done, Exit.fail(error(pending.destination)))
}

/** The records of a group per topic, in send order; `only` keeps the partitions it accepts. */
const recordsByTopic = <R>(group: ReadonlyArray<PendingSend<R>>, only?: (topic: string, partition: number) => boolean) => {
  const byTopic = new Map<string, Array<R>>()
  for (const pending of group) {
    pending.records.forEach((record, i) => {
      if (only !== undefined && !only(pending.destination, pending.partitions[i]!)) return
      const records = byTopic.get(pending.destination)
      if (records === undefined) byTopic.set(pending.destination, [record])
      else records.push(record)
    })
  }
  return byTopic
}

const missingSlots = <R>(group: ReadonlyArray<PendingSend<R>>, metadata: ReadonlyArray<Written>) => {
  const answered = new Set(metadata.map((m) => slotKey(m.topicName, m.partition)))
  const missing = new Set<string>()
  for (const pending of group) {
    for (const partition of pending.partitions) {
      const slot = slotKey(pending.destination, partition)
      if (!answered.has(slot)) missing.add(slot)
    }
  }
  return missing
}

const noLeader = (destination: string) =>
  new Errors.PublishError({
    destination,
    reason: Errors.reason(
      "Unknown",
      "the producer knows no leader for the message's partition (topic metadata is being refreshed)"
    )
  })

const disconnect = (producer: Producer) => Effect.promise(() => producer.disconnect().catch(() => undefined))

/** The producer in use, replaced by a fresh one (new producer id, fresh sequences) after a failed send. */
const makeProducerSlot = Effect.fn("Kafka.producerSlot")(function*(
  connection: KafkaConnection["Service"],
  topology: KafkaTopology["Service"]
) {
  const producer = yield* Ref.make(connection.producer)
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(Ref.get(producer), (p) => (p === connection.producer ? Effect.void : disconnect(p)))
  )
  const replace = Effect.gen(function*() {
    const fresh = connection.newProducer()
    yield* Effect.tryPromise(() => fresh.connect())
    const old = yield* Ref.getAndSet(producer, fresh)
    if (old !== connection.producer) yield* disconnect(old)
    // a reconnect: topics deleted meanwhile are created again on their next use
    yield* topology.reprovision
    yield* Effect.logDebug("kafka producer replaced after a failed send")
  }).pipe(
    Effect.catch((error) =>
      Effect.logWarning("could not replace the kafka producer; trying again after the next failure", String(error))
    )
  )
  const send = (byTopic: ReadonlyMap<string, ReadonlyArray<Message>>) =>
    Effect.flatMap(Ref.get(producer), (p) =>
      Effect.tryPromise({
        try: () =>
          p.sendBatch({
            topicMessages: Array.from(byTopic, ([topic, messages]) => ({ topic, messages: [...messages] })),
            acks: -1,
            compression: connection.resolved.compression
          }),
        catch: (cause) => cause
      }))
  return { replace, send }
})

/** The sender: one fiber, one send at a time. */
const makeSender = Effect.fn("Kafka.makeSender")(function*<R>(
  connection: KafkaConnection["Service"],
  topology: KafkaTopology["Service"],
  slot: ProducerSlot<R>,
  sendError: (destination: string, cause: unknown) => Errors.PublishError
) {
  const { replace: replaceProducer, send: sendRecords } = slot
  const refreshAll = (group: ReadonlyArray<PendingSend<R>>) =>
    Effect.forEach(new Set(group.map((p) => p.destination)), topology.refreshMetadata, { discard: true })

  const resendMissing = (group: ReadonlyArray<PendingSend<R>>, metadata: ReadonlyArray<Written>, missing: ReadonlySet<string>) =>
    refreshAll(group).pipe(
      Effect.andThen(replaceProducer),
      Effect.andThen(sendRecords(recordsByTopic(group, (topic, partition) => missing.has(slotKey(topic, partition))))),
      Effect.matchCauseEffect({
        onSuccess: (again) =>
          Effect.sync(() => {
            const all = [...metadata, ...again]
            const still = missingSlots(group, all)
            const failed = new Set(group.filter((p) => p.partitions.some((n) => still.has(slotKey(p.destination, n)))))
            settleSent(group, all, failed, noLeader)
          }),
        onFailure: (cause) => Effect.sync(() => failGroup(group, (d) => sendError(d, Cause.squash(cause))))
      })
    )

  const sendGroup = (group: ReadonlyArray<PendingSend<R>>) =>
    sendRecords(recordsByTopic(group)).pipe(
      Effect.matchCauseEffect({
        onSuccess: (metadata) => {
          const missing = missingSlots(group, metadata)
          return missing.size === 0
            ? Effect.sync(() => settleSent(group, metadata))
            : resendMissing(group, metadata, missing)
        },
        onFailure: (cause) => {
          const error = Cause.squash(cause)
          failGroup(group, (destination) => sendError(destination, error))
          return refreshAll(group).pipe(Effect.andThen(connection.resolved.idempotent ? replaceProducer : Effect.void))
        }
      })
    )

  // bounded: publishers wait for room (each is waiting for its own confirm anyway)
  const pendingSends = yield* Queue.bounded<PendingSend<R>>(4096)
  yield* Queue.takeAll(pendingSends).pipe(Effect.flatMap(sendGroup), Effect.forever, Effect.forkScoped)
  return pendingSends
})

/** The kafkajs producer. */
export const kafkajsProducer: ProducerDriver<Message> = { slot: makeProducerSlot, toRecord, publishError }

/**
 * The partition of each message like the Java client's default partitioner: murmur2 over the key's exact
 * bytes (kafkajs's `DefaultPartitioner`, used by both backends, so a key lands on the same partition from
 * either); messages without a key are spread.
 */
export const partitionerFor = () => {
  const partitioner = Partitioners.DefaultPartitioner()
  return (destination: string, metadata: ReadonlyArray<PartitionMetadata>, messages: ReadonlyArray<Envelope.OutgoingMessage>) => {
    const partitionMetadata = [...metadata]
    return messages.map((message) =>
      partitioner({ topic: destination, partitionMetadata, message: { key: recordKey(message), value: null } })
    )
  }
}

/** The publish function of a broker on a client's producer: provision the topic, partition like the Java client, send. */
export const makeWith = Effect.fn("Kafka.publish")(function*<R>(
  connection: KafkaConnection["Service"],
  topology: KafkaTopology["Service"],
  driver: ProducerDriver<R>
): Effect.fn.Return<Publish, never, Scope.Scope> {
  const pendingSends = yield* makeSender(connection, topology, yield* driver.slot(connection, topology), driver.publishError)
  const partition = partitionerFor()

  const send = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>, metadata: ReadonlyArray<PartitionMetadata>) =>
    Effect.suspend(() => {
      // the exact key bytes when the key is binary: murmur2 over them, like the Java client
      const partitions = partition(destination, metadata, messages)
      const records = messages.map((message, i) => driver.toRecord(message, partitions[i]!))
      const done = Deferred.makeUnsafe<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>()
      return Queue.offer(pendingSends, { destination, messages, records, partitions, done }).pipe(
        Effect.andThen(Deferred.await(done))
      )
    })

  return (destination, messages) =>
    messages.length === 0
      ? Effect.succeed([])
      : topology.ensureTopic(destination).pipe(
        Effect.mapError((e) => publishError(destination, e)),
        Effect.flatMap((metadata) => send(destination, messages, metadata))
      )
})

/** The publish function of the broker on the kafkajs producer. */
export const make = (
  connection: KafkaConnection["Service"],
  topology: KafkaTopology["Service"]
): Effect.Effect<Publish, never, Scope.Scope> => makeWith(connection, topology, kafkajsProducer)
