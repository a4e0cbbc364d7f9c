/**
 * Kafka topology: topics as data (`TopicSpec`, declared in the options' `topics`), and the admin operations:
 * create (waiting for leaders), describe, delete, and the cached "create on first use" the broker relies on.
 *
 * @since 0.3.0
 */
import { Cache, Context, Duration, Effect, Exit, Layer, Schema } from "effect"
import { Errors } from "@switchyard/core"
import type { Admin, PartitionMetadata } from "kafkajs"
import { reasonOf } from "./internal/errors.ts"
import * as Provision from "./internal/provision.ts"
import { KafkaConnection } from "./KafkaConnection.ts"

/**
 * An admin operation failed; `reason` is classified from kafkajs's error (the broker's words and code).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaTopology } from "@switchyard/kafka"
 * declare const op: Effect.Effect<void, KafkaTopology.KafkaTopologyError>
 * op.pipe(Effect.catchTag("KafkaTopologyError", (e) => Effect.logWarning(e.reason.message)))
 * ```
 * @since 0.3.0
 */
export class KafkaTopologyError extends Schema.TaggedError<KafkaTopologyError>()("KafkaTopologyError", {
  operation: Schema.String,
  reason: Errors.Reason,
  cause: Schema.optional(Schema.Defect())
}) {
  /** The reason's tag. */
  get kind(): Errors.ErrorKind {
    return this.reason._tag
  }

  override get message(): string {
    return `kafka admin ${this.operation} failed: ${this.reason.message}`
  }
}

/**
 * A topic to create: its name and {@link KafkaConnection.TopicSpec}.
 *
 * @since 0.3.0
 */
export type CreateTopic = Provision.CreateTopic

/**
 * What `describe` returns.
 *
 * @since 0.1.0
 */
export interface TopicDescription {
  readonly topic: string
  readonly partitions: ReadonlyArray<PartitionMetadata>
}

/**
 * The topology service's shape.
 *
 * @since 0.3.0
 */
export interface KafkaTopologyShape {
  /** The connected kafkajs admin client (the connection's). */
  readonly admin: Admin
  /** Creates topics (existing ones are left as they are) and waits for their leaders. */
  readonly createTopics: (topics: ReadonlyArray<CreateTopic>) => Effect.Effect<void, KafkaTopologyError>
  readonly describe: (topic: string) => Effect.Effect<TopicDescription, KafkaTopologyError>
  readonly deleteTopics: (topics: ReadonlyArray<string>) => Effect.Effect<void, KafkaTopologyError>
  /**
   * Makes sure a topic exists, creating it on first use from the declared topology or the defaults, and
   * returns its partition metadata (cached for `metadataMaxAge`).
   */
  readonly ensureTopic: (topic: string) => Effect.Effect<ReadonlyArray<PartitionMetadata>, KafkaTopologyError>
  /** Drops the cached partition metadata of a topic (fetched again on the next `ensureTopic`). */
  readonly refreshMetadata: (topic: string) => Effect.Effect<void>
  /** Forgets what was provisioned (after a reconnect): every topic is ensured again on its next use. */
  readonly reprovision: Effect.Effect<void>
}

/**
 * The topology service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaTopology } from "@switchyard/kafka"
 * const program = Effect.gen(function*() {
 *   const topology = yield* KafkaTopology.KafkaTopology
 *   yield* topology.createTopics([{ topic: "orders", partitions: 6 }])
 *   const d = yield* topology.describe("orders")
 *   yield* Effect.log(d.partitions.length)
 * })
 * ```
 * @since 0.3.0
 */
export class KafkaTopology extends Context.Service<KafkaTopology, KafkaTopologyShape>()(
  "@switchyard/kafka/KafkaTopology"
) {}

const failure = (operation: string) => (cause: unknown) =>
  new KafkaTopologyError({ operation, reason: reasonOf(cause), cause })

const sortedPartitions = (partitions: ReadonlyArray<PartitionMetadata>) =>
  [...partitions].sort((a, b) => a.partitionId - b.partitionId)

/**
 * Builds the topology service on a connection.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaConnection, KafkaTopology } from "@switchyard/kafka"
 * const program = Effect.gen(function*() {
 *   const connection = yield* KafkaConnection.KafkaConnection
 *   const topology = yield* KafkaTopology.make(connection)
 *   yield* topology.ensureTopic("orders")
 * })
 * ```
 * @since 0.3.0
 */
export const make = Effect.fn("KafkaTopology.make")(function*(connection: KafkaConnection["Service"]) {
  const { admin, resolved } = connection

  // kafkajs resolves to `false` (it does not throw) when every topic in the request already exists
  const createTopics = (topics: ReadonlyArray<CreateTopic>) =>
    Effect.tryPromise({
      try: () =>
        admin.createTopics({
          waitForLeaders: true,
          topics: topics.map((t) => ({
            topic: t.topic,
            numPartitions: t.partitions ?? resolved.defaultPartitions,
            replicationFactor: t.replicationFactor ?? resolved.defaultReplicationFactor,
            configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value }))
          }))
        }),
      catch: failure("createTopics")
    }).pipe(Effect.asVoid)

  const describe = (topic: string) =>
    Effect.tryPromise({ try: () => admin.fetchTopicMetadata({ topics: [topic] }), catch: failure("describe") }).pipe(
      Effect.flatMap((m) => {
        const t = m.topics.find((x) => x.name === topic)
        return t === undefined
          ? Effect.fail(
            new KafkaTopologyError({ operation: "describe", reason: Errors.reason("NotFound", `unknown topic ${topic}`) })
          )
          : Effect.succeed<TopicDescription>({ topic, partitions: sortedPartitions(t.partitions) })
      })
    )

  const provisioner = yield* Provision.make({ resolved, createTopics, describe })
  // partition metadata, fetched again after `metadataMaxAge` (like the Java client's metadata.max.age.ms)
  // or after a failed send, so publishers see partitions added to a topic
  const metadata = yield* Cache.makeWith(
    (topic: string): Effect.Effect<ReadonlyArray<PartitionMetadata>, KafkaTopologyError> =>
      provisioner.ensure(topic).pipe(Effect.andThen(describe(topic)), Effect.map((d) => d.partitions)),
    {
      capacity: Number.POSITIVE_INFINITY,
      timeToLive: (exit) => (Exit.isSuccess(exit) ? Duration.millis(resolved.metadataMaxAge) : Duration.zero)
    }
  )
  const refreshMetadata = (topic: string) => Cache.invalidate(metadata, topic)

  const deleteTopics = (names: ReadonlyArray<string>) =>
    Effect.tryPromise({ try: () => admin.deleteTopics({ topics: [...names] }), catch: failure("deleteTopics") }).pipe(
      Effect.tap(() =>
        Effect.forEach(names, (name) => Effect.andThen(provisioner.invalidate(name), refreshMetadata(name)), {
          discard: true
        })
      )
    )

  return KafkaTopology.of({
    admin,
    createTopics,
    describe,
    deleteTopics,
    ensureTopic: (topic) => Cache.get(metadata, topic),
    refreshMetadata,
    reprovision: Effect.andThen(provisioner.invalidateAll, Cache.invalidateAll(metadata))
  })
})

/**
 * The topology layer on the connection.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { KafkaConnection, KafkaTopology } from "@switchyard/kafka"
 * const layer = KafkaTopology.layer.pipe(Layer.provide(KafkaConnection.layer({ brokers: ["127.0.0.1:9092"] })))
 * ```
 * @since 0.3.0
 */
export const layer: Layer.Layer<KafkaTopology, never, KafkaConnection> = Layer.effect(
  KafkaTopology,
  Effect.flatMap(KafkaConnection, make)
)
