/**
 * The second Kafka backend of Switchyard's `Broker` contract: the data path on `@platformatic/kafka` (2.12),
 * the control plane on the kafkajs admin client. Chosen by layer: `KafkaPlatformatic.layer(options)` instead
 * of `KafkaBroker.layer(options)` (kafkajs stays the default); the options are `KafkaConnection.Options`.
 *
 * - publish: an idempotent @platformatic/kafka producer (acks=all), one send at a time coalescing what arrived
 *   meanwhile (the shared sender of `internal/publish.ts`); partitions chosen by the same murmur2 partitioner
 *   as the kafkajs backend and records built from the same fields (`internal/envelope.ts`), so a key lands on
 *   the same partition and a message reads the same whichever backend wrote it.
 * - subscribe: a @platformatic/kafka group member and messages stream feeding the same runloop
 *   (`internal/runloop.ts`: `prefetch` per partition, commits of the contiguous acked prefix, nack
 *   redelivery, graceful stop and final commit); see `internal/platformatic/consume.ts` for what differs
 *   (the stream pauses as a whole; commits carry no metadata of the offsets acked above the prefix).
 * - Control plane, reused from the kafkajs backend: topic provisioning and metadata (`KafkaTopology`),
 *   `browse` (a kafkajs consumer of a throwaway group), `lag` and `serverInfo` (kafkajs admin). The layer
 *   therefore also holds a kafkajs connection (admin client and an idle producer).
 *
 * @since 0.4.0
 */
import { type Config, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { Broker } from "@switchyard/core"
import type { Capabilities, Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import { browse } from "./internal/browse.ts"
import { subscribeError } from "./internal/errors.ts"
import * as Consume from "./internal/platformatic/consume.ts"
import { connectionError } from "./internal/platformatic/errors.ts"
import * as Produce from "./internal/platformatic/produce.ts"
import * as Publish from "./internal/publish.ts"
import { lag, serverInfo } from "./internal/serverInfo.ts"
import * as Subscription from "./internal/subscription.ts"
import * as KafkaBroker from "./KafkaBroker.ts"
import * as KafkaConnection from "./KafkaConnection.ts"
import * as KafkaTopology from "./KafkaTopology.ts"

/**
 * What this backend promises: the same as the kafkajs backend (`KafkaBroker.capabilities`).
 *
 * @example
 * ```ts
 * import { KafkaPlatformatic } from "@switchyard/kafka"
 * if (KafkaPlatformatic.capabilities.perKeyOrder) console.log("order per key")
 * ```
 * @since 0.4.0
 */
export const capabilities: Capabilities.Capabilities = KafkaBroker.capabilities

/**
 * The options of {@link layer}: `KafkaConnection.Options`, shared by both clients of the layer.
 *
 * @since 0.4.0
 */
export type Options = KafkaConnection.Options

const subscribeOn = Subscription.subscribeWith(Consume.driver)

/**
 * Builds the broker from the connection (kafkajs control plane) and topology services; the producer and
 * consumers it makes are @platformatic/kafka clients.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Broker } from "@switchyard/core"
 * import { KafkaPlatformatic } from "@switchyard/kafka"
 * const brokerLayer = Layer.effect(Broker.Broker, KafkaPlatformatic.make)
 * ```
 * @since 0.4.0
 */
export const make: Effect.Effect<
  Broker.BrokerShape,
  never,
  KafkaConnection.KafkaConnection | KafkaTopology.KafkaTopology | Scope.Scope
> = Effect.gen(function*() {
  const connection = yield* KafkaConnection.KafkaConnection
  const topology = yield* KafkaTopology.KafkaTopology
  const publish = yield* Publish.makeWith(connection, topology, Produce.producer)
  const subscribe = (destination: string, options: Broker.SubscribeOptions) =>
    topology.ensureTopic(destination).pipe(
      Effect.mapError((e) => subscribeError(destination, e)),
      Effect.flatMap((metadata) => subscribeOn({ connection, destination, options, partitionCount: metadata.length })),
      Effect.map((s): Broker.Subscription => ({ deliveries: s.deliveries, stopIntake: s.stopIntake }))
    )
  return Broker.Broker.of({
    system: "kafka",
    capabilities,
    publish,
    // one batch in flight, like the kafkajs backend: a failed send replaces the producer before the next one
    publishConcurrency: 1,
    subscribe,
    telemetryAttributes: KafkaBroker.telemetryAttributes,
    browse: browse({ connection, topology, publish }),
    lag: lag(topology),
    serverInfo: serverInfo(topology)
  })
})

/**
 * Checks that @platformatic/kafka takes the options and reaches the cluster (a metadata request), so a bad
 * option or an unreachable cluster fails the layer with `ConnectionError`, as with kafkajs.
 */
const probe = Effect.fn("KafkaPlatformatic.probe")(function*(connection: KafkaConnection.KafkaConnection["Service"]) {
  const producer = yield* Effect.acquireRelease(
    Effect.try({
      try: () => Produce.makeProducer(connection, "probe"),
      catch: (cause) => ConnectionOptions.invalid(connection.brokers, `invalid options: ${String(cause)}`)
    }),
    (p) => Effect.promise(() => p.close(true).catch(() => undefined))
  )
  yield* Effect.tryPromise({
    try: () => producer.metadata({ topics: [] }),
    catch: (cause) => connectionError(connection.brokers, cause, "@platformatic/kafka could not reach the cluster")
  })
})

const onConnection = <E>(connection: Layer.Layer<KafkaConnection.KafkaConnection, E>) =>
  Layer.effect(
    Broker.Broker,
    Effect.gen(function*() {
      yield* Effect.scoped(probe(yield* KafkaConnection.KafkaConnection))
      return yield* make
    })
  ).pipe(Layer.provideMerge(KafkaTopology.layer), Layer.provide(connection))

/**
 * The broker layer on @platformatic/kafka: `Broker`, plus the native `KafkaTopology` (kafkajs admin).
 *
 * @example
 * ```ts
 * import { KafkaPlatformatic } from "@switchyard/kafka"
 * const layer = KafkaPlatformatic.layer({ brokers: ["127.0.0.1:9092"], clientId: "orders", defaultPartitions: 6 })
 * ```
 * @since 0.4.0
 */
export const layer = (
  options: Options
): Layer.Layer<Broker.Broker | KafkaTopology.KafkaTopology, Errors.ConnectionError> =>
  onConnection(KafkaConnection.layer(options))

/**
 * The broker layer from configuration (by default `KafkaConnection.config()`, i.e. environment variables);
 * bad configuration fails with `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { KafkaConnection, KafkaPlatformatic } from "@switchyard/kafka"
 * const layer = KafkaPlatformatic.layerConfig(KafkaConnection.config("KAFKA"))
 * ```
 * @since 0.4.0
 */
export const layerConfig = (
  config: Config.Wrap<Options> = KafkaConnection.config()
): Layer.Layer<Broker.Broker | KafkaTopology.KafkaTopology, Errors.ConnectionError> =>
  onConnection(KafkaConnection.layerConfig(config))
