/**
 * Consume-transform-produce exactly once: a transactional producer writes the outputs of a processed batch
 * and the consumed offsets of that batch in ONE Kafka transaction. Either both become visible (to
 * `read_committed` consumers, the kafkajs default) or neither does.
 *
 * @since 0.1.0
 */
import { Context, Effect, Exit, Layer, Schema, Semaphore } from "effect"
import type { Broker, Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { type Message, Partitioners, type Producer, type Transaction } from "kafkajs"
import { recordKey, toRecord } from "./internal/envelope.ts"
import { connectionError, reasonOf } from "./internal/errors.ts"
import * as KafkaConnection from "./KafkaConnection.ts"
import * as KafkaTopology from "./KafkaTopology.ts"

/**
 * The transaction was aborted (or could not be committed); nothing of it is visible.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaTransactions } from "@switchyard/kafka"
 * declare const tx: Effect.Effect<void, KafkaTransactions.TransactionError>
 * tx.pipe(Effect.catchTag("TransactionError", (e) => Effect.logWarning(e.message)))
 * ```
 * @since 0.1.0
 */
export class TransactionError extends Schema.TaggedError<TransactionError>()("TransactionError", {
  reason: Errors.Reason,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `kafka transaction aborted: ${this.reason.message}`
  }
}

const transactionError = (cause: unknown) => new TransactionError({ reason: reasonOf(cause), cause })

interface Prepared {
  readonly topic: string
  readonly messages: ReadonlyArray<Message>
}

/** The offsets after the consumed deliveries: per topic and partition, the highest offset + 1. */
const offsetsOf = (consumed: ReadonlyArray<Broker.RawDelivery>) => {
  const offsets = new Map<string, Map<number, number>>()
  for (const d of consumed) {
    const { destination, partition, offset } = d.envelope.coordinates
    if (partition === undefined || offset === undefined) continue
    const perTopic = offsets.get(destination) ?? new Map<number, number>()
    perTopic.set(partition, Math.max(perTopic.get(partition) ?? -1, Number(offset) + 1))
    offsets.set(destination, perTopic)
  }
  return offsets
}

/** Sends, sends the offsets, commits; any failure aborts the transaction. */
const runTransaction = (
  producer: Producer,
  group: string,
  prepared: ReadonlyArray<Prepared>,
  offsets: ReadonlyMap<string, ReadonlyMap<number, number>>
) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({ try: () => producer.transaction(), catch: transactionError }),
    (tx: Transaction) =>
      Effect.tryPromise({
        try: async () => {
          for (const p of prepared) if (p.messages.length > 0) await tx.send({ topic: p.topic, messages: [...p.messages], acks: -1 })
          if (offsets.size > 0) {
            await tx.sendOffsets({
              consumerGroupId: group,
              topics: [...offsets].map(([topic, parts]) => ({
                topic,
                partitions: [...parts].map(([partition, offset]) => ({ partition, offset: String(offset) }))
              }))
            })
          }
          await tx.commit()
        },
        catch: transactionError
      }),
    (tx, exit) => (Exit.isFailure(exit) ? Effect.promise(() => tx.abort().catch(() => undefined)) : Effect.void)
  )

/**
 * Outputs of one processed batch.
 *
 * @since 0.1.0
 */
export interface Output {
  readonly destination: string
  readonly messages: ReadonlyArray<Envelope.OutgoingMessage>
}

/**
 * The transactions service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Broker } from "@switchyard/core"
 * import { KafkaTransactions } from "@switchyard/kafka"
 * declare const batch: ReadonlyArray<Broker.RawDelivery>
 * const program = Effect.gen(function*() {
 *   const tx = yield* KafkaTransactions.KafkaTransactions
 *   yield* tx.commit({ group: "enricher", consumed: batch, outputs: [{ destination: "enriched", messages: [] }] })
 * })
 * ```
 * @since 0.1.0
 */
export class KafkaTransactions extends Context.Service<KafkaTransactions, {
  /**
   * In one transaction: sends the outputs, sends the offsets after the consumed deliveries (per partition,
   * the highest offset + 1) for `group`, commits. Then acks the consumed deliveries. On any failure the
   * transaction is aborted and the deliveries are left unsettled (nack or let them be redelivered).
   * Process each partition in order (the consumed batch must be a prefix of what is unsettled).
   */
  readonly commit: (input: {
    readonly group: string
    readonly consumed: ReadonlyArray<Broker.RawDelivery>
    readonly outputs: ReadonlyArray<Output>
  }) => Effect.Effect<void, TransactionError>
  readonly producer: Producer
}>()("@switchyard/kafka/KafkaTransactions") {}

/**
 * A transactional producer with the given `transactionalId` (unique per producing instance: it fences
 * zombies of the same id). Transactions are serialized on it.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { KafkaBroker, KafkaTransactions } from "@switchyard/kafka"
 * const layer = KafkaTransactions.layer({ transactionalId: "enricher-1" }).pipe(
 *   Layer.provideMerge(KafkaBroker.layer({ brokers: ["127.0.0.1:9092"] }))
 * )
 * ```
 * @since 0.1.0
 */
export const layer = (options: {
  readonly transactionalId: string
}): Layer.Layer<KafkaTransactions, Errors.ConnectionError, KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology> =>
  Layer.effect(
    KafkaTransactions,
    Effect.gen(function*() {
      const connection = yield* KafkaConnection.KafkaConnection
      const topology = yield* KafkaTopology.KafkaTopology
      const producer = connection.kafka.producer({
        transactionalId: options.transactionalId,
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner
      })
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => producer.connect(),
          catch: (cause) => connectionError(connection.brokers, cause, "transactional producer connect failed")
        }),
        () => Effect.promise(() => producer.disconnect().catch(() => undefined))
      )
      const lock = yield* Semaphore.make(1)
      const partitioner = Partitioners.DefaultPartitioner()

      const prepare = (output: Output) =>
        topology.ensureTopic(output.destination).pipe(
          Effect.map((metadata): Prepared => ({
            topic: output.destination,
            messages: output.messages.map((m) =>
              toRecord(
                m,
                partitioner({ topic: output.destination, partitionMetadata: [...metadata], message: { key: recordKey(m), value: null } })
              )
            )
          })),
          Effect.mapError(transactionError)
        )

      const commit = Effect.fn("KafkaTransactions.commit")(function*(input: {
        readonly group: string
        readonly consumed: ReadonlyArray<Broker.RawDelivery>
        readonly outputs: ReadonlyArray<Output>
      }) {
        const prepared = yield* Effect.forEach(input.outputs, prepare)
        yield* runTransaction(producer, input.group, prepared, offsetsOf(input.consumed)).pipe(lock.withPermit)
        yield* Effect.forEach(input.consumed, (d) => Effect.ignore(d.ack), { discard: true })
      })

      return KafkaTransactions.of({ commit, producer })
    })
  )
