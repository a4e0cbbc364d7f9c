/**
 * The Kafka implementation of Switchyard's `Broker` contract (kafkajs 2.2.4).
 *
 * - publish: one idempotent (acks=all) `send` per batch; keys are partitioned with the Java client's
 *   murmur2 default partitioner; receipts carry partition and offset. A failed send fails the whole batch.
 * - subscribe: group = Kafka group id; a runloop owns the consumer's state (`internal/runloop.ts`):
 *   backpressure by pausing partitions (`prefetch` per partition), commits of the contiguous prefix of
 *   acknowledged offsets, with the offsets acked above it in the commit metadata (the next owner skips
 *   them); `nack` redelivers the record to this member, or to the next owner if this one stops first.
 * - Keys are bytes: a binary key keeps its exact bytes (`keyBytes`) and partition; topic metadata is refreshed
 *   after `metadataMaxAge`; failures carry an `Errors.Reason` classified from kafkajs's error codes.
 * - A destination not seen before is created on first use (default 4 partitions), idempotently and cached;
 *   declared `topics` take precedence.
 * - browse (dead-letter operations): the topic from its earliest to its end offsets at open, outside any
 *   group; `ack` records the removal in the compacted `<destination>.removed` (see `internal/browse.ts`).
 *   lag: end offsets minus the group's commits; serverInfo: the cluster id, brokers and controller.
 *
 * @since 0.1.0
 */
import { type Config, Effect, Layer, type Stream } from "effect"
import type { Scope } from "effect"
import { Broker } from "@switchyard/core"
import type { Capabilities, Envelope, Errors } from "@switchyard/core"
import { browse } from "./internal/browse.ts"
import { subscribeError } from "./internal/errors.ts"
import * as Publish from "./internal/publish.ts"
import { lag, serverInfo } from "./internal/serverInfo.ts"
import * as Subscription from "./internal/subscription.ts"
import * as KafkaConnection from "./KafkaConnection.ts"
import * as KafkaTopology from "./KafkaTopology.ts"

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
 * The options of {@link layer} (see `KafkaConnection.Options`).
 *
 * @since 0.1.0
 */
export type Options = KafkaConnection.Options

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
 * Builds the broker from the connection and topology services.
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
  KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology | Scope.Scope
> = Effect.gen(function*() {
  const connection = yield* KafkaConnection.KafkaConnection
  const topology = yield* KafkaTopology.KafkaTopology
  const publish = yield* Publish.make(connection, topology)
  const subscribe = (destination: string, options: Broker.SubscribeOptions) =>
    Effect.map(open(connection, topology, destination, options, false), (s): Broker.Subscription => ({
      deliveries: s.deliveries,
      stopIntake: s.stopIntake
    }))
  return Broker.Broker.of({
    system: "kafka",
    capabilities,
    publish,
    // one batch in flight: kafkajs' idempotent producer serialises produce requests per broker and rewinds
    // its sequence numbers when one fails, so a second batch in flight could be confirmed without being stored
    publishConcurrency: 1,
    subscribe,
    telemetryAttributes,
    browse: browse({ connection, topology, publish }),
    lag: lag(topology),
    serverInfo: serverInfo(topology)
  })
})

const open = (
  connection: KafkaConnection.KafkaConnection["Service"],
  topology: KafkaTopology.KafkaTopology["Service"],
  destination: string,
  options: Broker.SubscribeOptions,
  partitioned: boolean
) =>
  topology.ensureTopic(destination).pipe(
    Effect.mapError((e) => subscribeError(destination, e)),
    Effect.flatMap((metadata) =>
      Subscription.subscribe({ connection, destination, options, partitioned, partitionCount: metadata.length })
    )
  )

const nativeSubscribe = (destination: string, options: Broker.SubscribeOptions, partitioned: boolean) =>
  Effect.gen(function*() {
    const connection = yield* KafkaConnection.KafkaConnection
    const topology = yield* KafkaTopology.KafkaTopology
    return yield* open(connection, topology, destination, options, partitioned)
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
  Scope.Scope | KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology
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
  Scope.Scope | KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology
> => nativeSubscribe(destination, options, true).pipe(Effect.map((s) => s.partitions))

/** The broker on a connection layer: `Broker` plus `KafkaTopology` (the connection's layer is kept). */
const onConnection = <E>(connection: Layer.Layer<KafkaConnection.KafkaConnection, E>) =>
  Layer.effect(Broker.Broker, make).pipe(Layer.provideMerge(KafkaTopology.layer), Layer.provideMerge(connection))

/**
 * The Kafka broker layer: `Broker`, plus the native `KafkaConnection` and `KafkaTopology` services.
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
): Layer.Layer<Broker.Broker | KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology, Errors.ConnectionError> =>
  onConnection(KafkaConnection.layer(options))

/**
 * The broker layer from configuration (by default `KafkaConnection.config()`, i.e. environment variables);
 * bad configuration fails with `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { KafkaBroker, KafkaConnection } from "@switchyard/kafka"
 * const layer = KafkaBroker.layerConfig(KafkaConnection.config("KAFKA"))
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Wrap<Options> = KafkaConnection.config()
): Layer.Layer<Broker.Broker | KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology, Errors.ConnectionError> =>
  onConnection(KafkaConnection.layerConfig(config))
