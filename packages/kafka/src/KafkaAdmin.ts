/**
 * Topic administration: create (waiting for leaders), describe, delete, and the idempotent, cached
 * "create on first use" the broker adapter relies on.
 *
 * @since 0.1.0
 */
import { Cache, Context, Duration, Effect, Exit, Layer, Schedule, Schema } from "effect"
import { Errors } from "@switchyard/core"
import type { Admin, PartitionMetadata } from "kafkajs"
import { connectionError, reasonOf } from "./internal/errors.ts"
import { KafkaClient, type TopicSpec } from "./KafkaClient.ts"

/**
 * An admin operation failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaAdmin } from "@switchyard/kafka"
 * declare const op: Effect.Effect<void, KafkaAdmin.KafkaAdminError>
 * op.pipe(Effect.catchTag("KafkaAdminError", (e) => Effect.logWarning(e.message)))
 * ```
 * @since 0.1.0
 */
export class KafkaAdminError extends Schema.TaggedError<KafkaAdminError>()("KafkaAdminError", {
  operation: Schema.String,
  reason: Schema.String,
  /** Set when the adapter knows it without the cause (e.g. `NotFound` for a topic the cluster does not have). */
  kind: Schema.optional(Errors.ErrorKind),
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `kafka admin ${this.operation} failed: ${this.reason}`
  }
}

/**
 * A topic to create.
 *
 * @since 0.1.0
 */
export interface CreateTopic extends TopicSpec {
  readonly topic: string
}

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
 * The admin service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaAdmin } from "@switchyard/kafka"
 * const program = Effect.gen(function*() {
 *   const admin = yield* KafkaAdmin.KafkaAdmin
 *   yield* admin.createTopics([{ topic: "orders", partitions: 6 }])
 *   const d = yield* admin.describe("orders")
 *   yield* Effect.log(d.partitions.length)
 * })
 * ```
 * @since 0.1.0
 */
export class KafkaAdmin extends Context.Service<KafkaAdmin, {
  readonly admin: Admin
  /** Creates topics (existing ones are left as they are) and waits for their leaders. */
  readonly createTopics: (topics: ReadonlyArray<CreateTopic>) => Effect.Effect<void, KafkaAdminError>
  readonly describe: (topic: string) => Effect.Effect<TopicDescription, KafkaAdminError>
  readonly deleteTopics: (topics: ReadonlyArray<string>) => Effect.Effect<void, KafkaAdminError>
  /**
   * Makes sure a topic exists, creating it on first use from the declared topology or the defaults, and
   * returns its partition metadata. Cached: a map lookup, except once per `metadataMaxAge` (default 5
   * minutes), when the metadata is fetched again.
   */
  readonly ensureTopic: (topic: string) => Effect.Effect<ReadonlyArray<PartitionMetadata>, KafkaAdminError>
  /**
   * Drops the cached partition metadata of a topic, so the next `ensureTopic` fetches it again (it is also
   * fetched again after `metadataMaxAge`).
   */
  readonly refreshMetadata: (topic: string) => Effect.Effect<void>
}>()("@switchyard/kafka/KafkaAdmin") {}

/**
 * The admin layer; the admin client is connected once and disconnected with the layer.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { KafkaAdmin, KafkaClient } from "@switchyard/kafka"
 * const layer = KafkaAdmin.layer.pipe(Layer.provide(KafkaClient.layer({ brokers: ["127.0.0.1:9092"] })))
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<KafkaAdmin, Errors.ConnectionError, KafkaClient> = Layer.effect(
  KafkaAdmin,
  Effect.gen(function*() {
    const client = yield* KafkaClient
    const settings = client.settings
    const admin = client.kafka.admin()
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => admin.connect(),
        catch: (cause) => connectionError(settings.settings.brokers.join(","), cause, "admin connect failed")
      }),
      () => Effect.promise(() => admin.disconnect().catch(() => undefined))
    )

    // kafkajs resolves to `false` (it does not throw) when every topic in the request already exists
    const createTopics = (topics: ReadonlyArray<CreateTopic>) =>
      Effect.tryPromise({
        try: () =>
          admin.createTopics({
            waitForLeaders: true,
            topics: topics.map((t) => ({
              topic: t.topic,
              numPartitions: t.partitions ?? settings.defaultPartitions,
              replicationFactor: t.replicationFactor ?? settings.defaultReplicationFactor,
              configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value }))
            }))
          }),
        catch: (cause) => new KafkaAdminError({ operation: "createTopics", reason: reasonOf(cause), cause })
      }).pipe(Effect.asVoid)

    const describe = (topic: string) =>
      Effect.tryPromise({
        try: () => admin.fetchTopicMetadata({ topics: [topic] }),
        catch: (cause) => new KafkaAdminError({ operation: "describe", reason: reasonOf(cause), cause })
      }).pipe(
        Effect.flatMap((m) => {
          const t = m.topics.find((x) => x.name === topic)
          return t === undefined
            ? Effect.fail(new KafkaAdminError({ operation: "describe", reason: `unknown topic ${topic}`, kind: "NotFound" }))
            : Effect.succeed<TopicDescription>({
              topic,
              partitions: [...t.partitions].sort((a, b) => a.partitionId - b.partitionId)
            })
        })
      )

    // "create on first use", once per topic: concurrent callers share one lookup, which runs in its own
    // fiber and is interrupted only when every caller waiting on it is; failures are not cached
    const created = yield* Cache.makeWith(
      (topic: string) => {
        const declared = settings.settings.topics?.[topic] ?? {}
        return createTopics([{ ...declared, topic }]).pipe(
          Effect.andThen(describe(topic)),
          Effect.retry({ times: 5, schedule: Schedule.spaced("200 millis") }),
          Effect.asVoid
        )
      },
      { capacity: Number.POSITIVE_INFINITY, timeToLive: (exit) => (Exit.isSuccess(exit) ? Duration.infinity : Duration.zero) }
    )
    // partition metadata, fetched again after `metadataMaxAge` (like the Java client's metadata.max.age.ms)
    // or after a failed send, so publishers see partitions added to a topic
    const metadata = yield* Cache.makeWith(
      (topic: string): Effect.Effect<ReadonlyArray<PartitionMetadata>, KafkaAdminError> =>
        Cache.get(created, topic).pipe(Effect.andThen(describe(topic)), Effect.map((d) => d.partitions)),
      {
        capacity: Number.POSITIVE_INFINITY,
        timeToLive: (exit) => (Exit.isSuccess(exit) ? Duration.millis(settings.metadataMaxAge) : Duration.zero)
      }
    )
    const ensureTopic = (topic: string): Effect.Effect<ReadonlyArray<PartitionMetadata>, KafkaAdminError> =>
      Cache.get(metadata, topic)
    const refreshMetadata = (topic: string) => Cache.invalidate(metadata, topic)

    const deleteTopics = (names: ReadonlyArray<string>) =>
      Effect.tryPromise({
        try: () => admin.deleteTopics({ topics: [...names] }),
        catch: (cause) => new KafkaAdminError({ operation: "deleteTopics", reason: reasonOf(cause), cause })
      }).pipe(Effect.tap(() =>
        Effect.forEach(names, (name) => Effect.andThen(Cache.invalidate(created, name), refreshMetadata(name)), { discard: true })
      ))

    return KafkaAdmin.of({ admin, createTopics, describe, deleteTopics, ensureTopic, refreshMetadata })
  })
)
