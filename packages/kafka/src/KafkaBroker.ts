/**
 * The Kafka implementation of Switchyard's `Broker` contract (kafkajs 2.2.4).
 *
 * - publish: one idempotent (acks=all) `send` per batch; keys are partitioned with the Java client's
 *   murmur2 default partitioner; receipts carry partition and offset. A failed send fails the whole batch.
 * - subscribe: group = Kafka group id; backpressure by pausing partitions; commits are the contiguous prefix
 *   of acknowledged offsets, with the offsets acked above it in the commit metadata (the next owner skips
 *   them); `nack` redelivers the record to this member, or to the next owner if this one stops first (see
 *   `internal/subscription.ts`).
 * - Keys are bytes: a binary key keeps its exact bytes (`keyBytes`) and partition; topic metadata is refreshed
 *   after `metadataMaxAge`; failures carry a `kind` classified from kafkajs's error codes.
 * - A destination not seen before is created on first use (default 4 partitions), idempotently and cached;
 *   declared `topics` take precedence.
 * - browse (dead-letter operations): the topic from its earliest to its end offsets at open, outside any
 *   group; `ack` records the removal in the compacted `<destination>.removed` (see `internal/browse.ts`).
 *   lag: end offsets minus the group's commits; serverInfo: the cluster id, brokers and controller.
 *
 * @since 0.1.0
 */
import { Cause, Config, Deferred, Effect, Exit, Layer, Option, Queue, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import { Broker, Errors } from "@switchyard/core"
import type { Capabilities, Envelope } from "@switchyard/core"
import { Partitioners, type PartitionMetadata, type RecordMetadata } from "kafkajs"
import * as KafkaAdmin from "./KafkaAdmin.ts"
import * as KafkaClient from "./KafkaClient.ts"
import { recordKey, toRecord } from "./internal/codec.ts"
import { browse } from "./internal/browse.ts"
import { publishError, subscribeError } from "./internal/errors.ts"
import { lag, serverInfo } from "./internal/operations.ts"
import * as Subscription from "./internal/subscription.ts"

/**
 * What Kafka promises. Order holds per key (partition), not across a whole multi-partition topic; nack
 * redelivers to the same member (optionally delayed); new groups can replay from the earliest offset.
 *
 * @example
 * ```ts
 * import { KafkaBroker } from "@switchyard/kafka"
 * if (KafkaBroker.capabilities.consumerGroups) console.log("groups")
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  consumerGroups: true,
  perKeyOrder: true,
  orderedDelivery: false,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: true,
  exactlyOnce: false,
  atMostOnce: false
}

/**
 * The settings of {@link layer} (see `KafkaClient.KafkaSettings`).
 *
 * @since 0.1.0
 */
export type Options = KafkaClient.KafkaSettings

/**
 * A partition's own stream of deliveries (native extra); it ends when the partition is revoked.
 *
 * @since 0.1.0
 */
export type PartitionStream = Subscription.PartitionStream

/**
 * An assignment change of this member (native extra).
 *
 * @since 0.1.0
 */
export type RebalanceEvent = Subscription.RebalanceEvent

/**
 * The Kafka-native view of a subscription.
 *
 * @since 0.1.0
 */
export interface KafkaSubscription extends Broker.Subscription {
  /** Assignment changes of this member: `Assigned` (the full new assignment) and `Revoked`. Single reader. */
  readonly rebalances: Stream.Stream<RebalanceEvent, Errors.SubscribeError>
  /** Lag per assigned partition: high watermark minus the acknowledged position. */
  readonly lag: Effect.Effect<ReadonlyMap<number, number>>
  /** Commits the acknowledged prefix now (it is also committed every `commitInterval`). */
  readonly commit: Effect.Effect<void>
}

/**
 * The consumer-lag gauge (`switchyard_kafka_consumer_lag`, attributes topic, group, partition), updated on
 * every commit.
 *
 * @since 0.1.0
 */
export const lagGauge = Subscription.lagGauge

/**
 * The Kafka attributes of a delivered message's `process` span (OpenTelemetry messaging conventions):
 * partition, offset and, when the record has a text key, the key.
 *
 * @example
 * ```ts
 * import { KafkaBroker } from "@switchyard/kafka"
 * import type { Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * const attributes = KafkaBroker.telemetryAttributes(envelope) // { "messaging.kafka.offset": 42, ... }
 * ```
 * @since 0.2.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => {
  const { partition, offset } = envelope.coordinates
  const attributes: Record<string, string | number> = {}
  if (partition !== undefined) attributes["messaging.destination.partition.id"] = String(partition)
  if (offset !== undefined) attributes["messaging.kafka.offset"] = Number(offset)
  // a binary key has no faithful text form: leave it out rather than report replacement characters
  if (envelope.key !== undefined && envelope.keyBytes === undefined) attributes["messaging.kafka.message.key"] = envelope.key
  return attributes
}

/**
 * Builds the broker from the client and admin services.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Broker } from "@switchyard/core"
 * import { KafkaBroker } from "@switchyard/kafka"
 * const brokerLayer = Layer.effect(Broker.Broker, KafkaBroker.make)
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<
  Broker.BrokerShape,
  never,
  KafkaClient.KafkaClient | KafkaAdmin.KafkaAdmin | Scope.Scope
> = Effect
  .gen(function*() {
    const client = yield* KafkaClient.KafkaClient
    const admin = yield* KafkaAdmin.KafkaAdmin
    const partitioner = Partitioners.DefaultPartitioner()
    const { settings } = client

    // kafkajs rolls an idempotent producer's sequence numbers back when a produce request fails, even when
    // the broker did write it (a connection lost mid-request, e.g. during a broker restart). The next,
    // different batch then reuses those sequence numbers, the broker takes it for a duplicate, confirms it
    // with the earlier batch's offset and never stores it: a confirmed message is lost. So one sender fiber
    // sends at a time — coalescing every publish that arrived meanwhile into one `sendBatch`, which keeps
    // the throughput of pipelined sends — and after a failed send it replaces the producer (a new producer
    // id starts fresh sequences) before sending anything else.
    let producer = client.producer
    yield* Effect.addFinalizer(() =>
      producer === client.producer ? Effect.void : Effect.promise(() => producer.disconnect().catch(() => undefined))
    )
    const replaceProducer = Effect.suspend(() => {
      const fresh = client.newProducer()
      const old = producer
      return Effect.tryPromise(() => fresh.connect()).pipe(
        Effect.andThen(Effect.sync(() => {
          producer = fresh
        })),
        Effect.andThen(old === client.producer ? Effect.void : Effect.promise(() => old.disconnect().catch(() => undefined))),
        Effect.andThen(Effect.logDebug("kafka producer replaced after a failed send")),
        Effect.catch((error) =>
          Effect.logWarning("could not replace the kafka producer; trying again after the next failure", String(error))
        )
      )
    })

    interface PendingSend {
      readonly destination: string
      readonly messages: ReadonlyArray<Envelope.OutgoingMessage>
      readonly records: ReadonlyArray<ReturnType<typeof toRecord>>
      readonly partitions: ReadonlyArray<number>
      readonly done: Deferred.Deferred<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>
    }

    /**
     * Receipts in send order: each partition's messages take consecutive offsets from its base offset. The
     * `failed` ones (some of their records were not written) fail with `error` instead.
     */
    const settleSent = (
      group: ReadonlyArray<PendingSend>,
      metadata: ReadonlyArray<RecordMetadata>,
      failed: ReadonlySet<PendingSend> = new Set(),
      error?: (destination: string) => Errors.PublishError
    ) => {
      const next = new Map<string, number>()
      for (const m of metadata) {
        if (m.baseOffset !== undefined) next.set(`${m.topicName}\u0000${m.partition}`, Number(m.baseOffset))
      }
      for (const pending of group) {
        const receipts = pending.messages.map((message, i): Envelope.PublishReceipt => {
          const partition = pending.partitions[i]!
          const slot = `${pending.destination}\u0000${partition}`
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
        Deferred.doneUnsafe(
          pending.done,
          failed.has(pending) && error !== undefined ? Exit.fail(error(pending.destination)) : Exit.succeed(receipts)
        )
      }
    }

    const failGroup = (group: ReadonlyArray<PendingSend>, error: (destination: string) => Errors.PublishError) => {
      for (const pending of group) Deferred.doneUnsafe(pending.done, Exit.fail(error(pending.destination)))
    }

    const sendRecords = (byTopic: ReadonlyMap<string, ReadonlyArray<ReturnType<typeof toRecord>>>) =>
      Effect.tryPromise({
        try: () =>
          producer.sendBatch({
            topicMessages: Array.from(byTopic, ([topic, messages]) => ({ topic, messages: [...messages] })),
            acks: -1,
            compression: settings.compression
          }),
        catch: (cause) => cause
      })

    /** The records of a group per topic, in send order; `only` keeps the partitions it accepts. */
    const recordsByTopic = (group: ReadonlyArray<PendingSend>, only?: (topic: string, partition: number) => boolean) => {
      const byTopic = new Map<string, Array<ReturnType<typeof toRecord>>>()
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

    const slotKey = (topic: string, partition: number) => `${topic}\u0000${partition}`

    // kafkajs silently leaves out records for a partition its own (older) metadata does not know yet, and
    // answers without them: a confirmed publish that was never written. Partitions missing from the answer
    // are sent again once with a fresh producer (fresh metadata); only then is their publish failed.
    const missingSlots = (group: ReadonlyArray<PendingSend>, metadata: ReadonlyArray<RecordMetadata>) => {
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

    const refreshAll = (group: ReadonlyArray<PendingSend>) =>
      Effect.forEach(new Set(group.map((p) => p.destination)), (topic) => admin.refreshMetadata(topic), { discard: true })

    const onSent = (group: ReadonlyArray<PendingSend>, metadata: ReadonlyArray<RecordMetadata>) => {
      const missing = missingSlots(group, metadata)
      if (missing.size === 0) return Effect.sync(() => settleSent(group, metadata))
      const unsent = (topic: string, partition: number) => missing.has(slotKey(topic, partition))
      return refreshAll(group).pipe(
        Effect.andThen(replaceProducer),
        Effect.andThen(sendRecords(recordsByTopic(group, unsent))),
        Effect.matchCauseEffect({
          onSuccess: (again) =>
            Effect.sync(() => {
              const all = [...metadata, ...again]
              const still = missingSlots(group, all)
              const failed = new Set(
                group.filter((p) => p.partitions.some((partition) => still.has(slotKey(p.destination, partition))))
              )
              settleSent(group, all, failed, (destination) =>
                new Errors.PublishError({
                  destination,
                  reason: "the producer knows no leader for the message's partition (topic metadata is being refreshed)",
                  kind: "Unknown"
                }))
            }),
          onFailure: (cause) => Effect.sync(() => failGroup(group, (d) => publishError(d, Cause.squash(cause))))
        })
      )
    }

    const sendGroup = (group: ReadonlyArray<PendingSend>) =>
      sendRecords(recordsByTopic(group)).pipe(
        Effect.matchCauseEffect({
          onSuccess: (metadata) => onSent(group, metadata),
          onFailure: (cause) => {
            const error = Cause.squash(cause)
            failGroup(group, (destination) => publishError(destination, error))
            return refreshAll(group).pipe(Effect.andThen(settings.idempotent ? replaceProducer : Effect.void))
          }
        })
      )

    const pendingSends = yield* Queue.unbounded<PendingSend>()
    yield* Queue.takeAll(pendingSends).pipe(Effect.flatMap(sendGroup), Effect.forever, Effect.forkScoped)

    const send = (
      destination: string,
      messages: ReadonlyArray<Envelope.OutgoingMessage>,
      metadata: ReadonlyArray<PartitionMetadata>
    ) =>
      Effect.suspend(() => {
        const partitions = new Array<number>(messages.length)
        const partitionMetadata = [...metadata]
        const records = messages.map((message, i) => {
          // the exact key bytes when the key is binary: murmur2 over them, like the Java client
          const partition = partitioner({
            topic: destination,
            partitionMetadata,
            message: { key: recordKey(message), value: null }
          })
          partitions[i] = partition
          return toRecord(message, partition)
        })
        const done = Deferred.makeUnsafe<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>()
        Queue.offerUnsafe(pendingSends, { destination, messages, records, partitions, done })
        return Deferred.await(done)
      })

    const publish = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>) =>
      messages.length === 0
        ? Effect.succeed([])
        : admin.ensureTopic(destination).pipe(
          Effect.mapError((e) => publishError(destination, e)),
          Effect.flatMap((metadata) => send(destination, messages, metadata))
        )

    const subscribe = (destination: string, options: Broker.SubscribeOptions) =>
      admin.ensureTopic(destination).pipe(
        Effect.mapError((e) => subscribeError(destination, e)),
        Effect.andThen(Subscription.subscribe({ client, admin, destination, options })),
        Effect.map((s): Broker.Subscription => ({ deliveries: s.deliveries }))
      )

    return Broker.Broker.of({
      system: "kafka",
      capabilities,
      publish,
      subscribe,
      telemetryAttributes,
      browse: browse({ client, admin, publish }),
      lag: lag(admin),
      serverInfo: serverInfo(admin)
    })
  })

const nativeSubscribe = (destination: string, options: Broker.SubscribeOptions, partitioned: boolean) =>
  Effect.gen(function*() {
    const client = yield* KafkaClient.KafkaClient
    const admin = yield* KafkaAdmin.KafkaAdmin
    yield* admin.ensureTopic(destination).pipe(Effect.mapError((e) => subscribeError(destination, e)))
    return yield* Subscription.subscribe({ client, admin, destination, options, partitioned })
  })

/**
 * Like `Broker.subscribe`, with Kafka extras: rebalance events, lag, explicit commit.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { KafkaBroker } from "@switchyard/kafka"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const sub = yield* KafkaBroker.subscribe("orders", { group: "billing", prefetch: 256, startFrom: "earliest" })
 *   yield* sub.rebalances.pipe(Stream.runForEach((e) => Effect.log(e._tag, e.partitions)), Effect.forkScoped)
 *   yield* sub.deliveries.pipe(Stream.runForEach((d) => d.ack))
 * }))
 * ```
 * @since 0.1.0
 */
export const subscribe = (
  destination: string,
  options: Broker.SubscribeOptions
): Effect.Effect<
  KafkaSubscription,
  Errors.SubscribeError,
  Scope.Scope | KafkaClient.KafkaClient | KafkaAdmin.KafkaAdmin
> => nativeSubscribe(destination, options, false)

/**
 * The partition-aware subscription (native extra): a stream with one sub-stream per assigned partition,
 * each ending when its partition is revoked (a partition assigned again later comes as a new sub-stream).
 * Process sub-streams concurrently; within one, records come in offset order.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { KafkaBroker } from "@switchyard/kafka"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const partitions = yield* KafkaBroker.partitionedStream("orders", { group: "g", prefetch: 100, startFrom: "earliest" })
 *   yield* partitions.pipe(
 *     Stream.flatMap((p) => p.deliveries.pipe(Stream.mapEffect((d) => d.ack)), { concurrency: "unbounded" }),
 *     Stream.runDrain
 *   )
 * }))
 * ```
 * @since 0.1.0
 */
export const partitionedStream = (
  destination: string,
  options: Broker.SubscribeOptions
): Effect.Effect<
  Stream.Stream<PartitionStream, Errors.SubscribeError>,
  Errors.SubscribeError,
  Scope.Scope | KafkaClient.KafkaClient | KafkaAdmin.KafkaAdmin
> => nativeSubscribe(destination, options, true).pipe(Effect.map((s) => s.partitions))

/**
 * The Kafka broker layer: `Broker`, plus the native `KafkaClient` and `KafkaAdmin` services.
 *
 * @example
 * ```ts
 * import { KafkaBroker } from "@switchyard/kafka"
 * const layer = KafkaBroker.layer({ brokers: ["127.0.0.1:9092"], clientId: "orders", defaultPartitions: 6 })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<Broker.Broker | KafkaClient.KafkaClient | KafkaAdmin.KafkaAdmin, Errors.ConnectionError> => {
  const base = KafkaAdmin.layer.pipe(Layer.provideMerge(KafkaClient.layer(options)))
  return Layer.effect(Broker.Broker, make).pipe(Layer.provideMerge(base))
}

const splitList = (s: string) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)

/**
 * The settings read from the environment:
 * `KAFKA_BROKERS` (comma separated, required), `KAFKA_CLIENT_ID`, `KAFKA_SSL` (boolean),
 * `KAFKA_SASL_MECHANISM` (`plain` | `scram-sha-256` | `scram-sha-512`), `KAFKA_SASL_USERNAME`,
 * `KAFKA_SASL_PASSWORD` (read as `Redacted`), `KAFKA_DEFAULT_PARTITIONS`, `KAFKA_RETRIES`, and durations
 * (`"30 seconds"`, `"500 millis"`): `KAFKA_METADATA_MAX_AGE`, `KAFKA_SESSION_TIMEOUT`, `KAFKA_HEARTBEAT_INTERVAL`,
 * `KAFKA_REBALANCE_TIMEOUT`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KafkaBroker } from "@switchyard/kafka"
 * const settings = Effect.gen(function*() { return yield* KafkaBroker.config })
 * ```
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  brokers: Config.String("KAFKA_BROKERS").pipe(Config.map(splitList)),
  clientId: Config.option(Config.String("KAFKA_CLIENT_ID")),
  ssl: Config.option(Config.Boolean("KAFKA_SSL")),
  mechanism: Config.option(Config.Literals(["plain", "scram-sha-256", "scram-sha-512"], "KAFKA_SASL_MECHANISM")),
  username: Config.option(Config.String("KAFKA_SASL_USERNAME")),
  password: Config.option(Config.Redacted("KAFKA_SASL_PASSWORD")),
  defaultPartitions: Config.option(Config.Int("KAFKA_DEFAULT_PARTITIONS")),
  retries: Config.option(Config.Int("KAFKA_RETRIES")),
  metadataMaxAge: Config.option(Config.Duration("KAFKA_METADATA_MAX_AGE")),
  sessionTimeout: Config.option(Config.Duration("KAFKA_SESSION_TIMEOUT")),
  heartbeatInterval: Config.option(Config.Duration("KAFKA_HEARTBEAT_INTERVAL")),
  rebalanceTimeout: Config.option(Config.Duration("KAFKA_REBALANCE_TIMEOUT"))
}).pipe(
  Config.map((c): Options => {
    const mechanism = Option.getOrUndefined(c.mechanism)
    const username = Option.getOrUndefined(c.username)
    const password = Option.getOrUndefined(c.password)
    const consumer: KafkaClient.ConsumerSettings = {
      ...(Option.isSome(c.sessionTimeout) ? { sessionTimeout: c.sessionTimeout.value } : {}),
      ...(Option.isSome(c.heartbeatInterval) ? { heartbeatInterval: c.heartbeatInterval.value } : {}),
      ...(Option.isSome(c.rebalanceTimeout) ? { rebalanceTimeout: c.rebalanceTimeout.value } : {})
    }
    return {
      brokers: c.brokers,
      ...(Option.isSome(c.clientId) ? { clientId: c.clientId.value } : {}),
      ...(Option.isSome(c.ssl) ? { ssl: c.ssl.value } : {}),
      ...(mechanism !== undefined
        ? { sasl: { mechanism, username: username ?? "", password: password ?? Redacted.make("") } }
        : {}),
      ...(Option.isSome(c.defaultPartitions) ? { defaultPartitions: c.defaultPartitions.value } : {}),
      ...(Option.isSome(c.retries) ? { retry: { retries: c.retries.value } } : {}),
      ...(Option.isSome(c.metadataMaxAge) ? { metadataMaxAge: c.metadataMaxAge.value } : {}),
      ...(Object.keys(consumer).length > 0 ? { consumer } : {})
    }
  })
)

/**
 * The broker layer from `Config` (by default {@link config}, i.e. environment variables). `overrides` are
 * merged over what the config gives; their `consumer` timings are merged field by field over the config's.
 *
 * @example
 * ```ts
 * import { KafkaBroker } from "@switchyard/kafka"
 * const layer = KafkaBroker.layerConfig()
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  settings: Config.Config<Options> = config,
  overrides: Partial<Options> = {}
): Layer.Layer<Broker.Broker | KafkaClient.KafkaClient | KafkaAdmin.KafkaAdmin, Errors.ConnectionError> =>
  Layer.unwrap(
    settings.pipe(
      Effect.mapError((cause: Config.ConfigError) =>
        new Errors.ConnectionError({ broker: "kafka", reason: `invalid configuration: ${cause.message}`, cause })
      ),
      Effect.map((options: Options) =>
        layer({
          ...options,
          ...overrides,
          ...(options.consumer !== undefined || overrides.consumer !== undefined
            ? { consumer: { ...options.consumer, ...overrides.consumer } }
            : {})
        })
      )
    )
  )
