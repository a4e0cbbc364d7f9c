/**
 * The NATS broker switch: JetStream (durable, the default) or core NATS (at-most-once), each as one
 * Layer that also provides the connection and the native services.
 *
 * @since 0.1.0
 */
import type { Broker, Capabilities, Errors } from "@switchyard/core"
import type { Config } from "effect"
import { Layer } from "effect"
import type { KeyValueStore } from "effect/persistence"
import * as CoreNats from "./CoreNats.ts"
import * as JetStream from "./JetStream.ts"
import * as NatsConnection from "./NatsConnection.ts"
import * as NatsKeyValueStore from "./NatsKeyValueStore.ts"

/**
 * Options of {@link layer}: the connection plus the JetStream topology and consumer settings.
 *
 * @example
 * ```ts
 * import type { NatsBroker } from "@switchyard/nats"
 * const options: NatsBroker.Options = {
 *   connection: { servers: "nats://127.0.0.1:4222" },
 *   streams: [{ name: "ORDERS", subjects: ["orders.>"] }]
 * }
 * ```
 * @since 0.1.0
 */
export interface Options extends JetStream.Options {
  readonly connection: NatsConnection.Options
}

/**
 * What the default (JetStream) broker promises.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * console.log(NatsBroker.capabilities.persistent) // true
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = JetStream.capabilities

/**
 * What core NATS promises: at-most-once, no persistence, no redelivery.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * console.log(NatsBroker.capabilitiesCore.atMostOnce) // true
 * ```
 * @since 0.1.0
 */
export const capabilitiesCore: Capabilities.Capabilities = CoreNats.capabilities

/**
 * JetStream broker with its own connection (drained on shutdown).
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerJetStream({ connection: { servers: "nats://127.0.0.1:4222" } })
 * ```
 * @since 0.1.0
 */
export const layerJetStream = (
  options: Options
): Layer.Layer<Broker.Broker | JetStream.JetStream | NatsConnection.NatsConnection, Errors.ConnectionError> =>
  JetStream.layer(options).pipe(Layer.provideMerge(NatsConnection.layer(options.connection)))

/**
 * The default NATS broker: JetStream (see {@link layerJetStream}).
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layer({ connection: { servers: "nats://127.0.0.1:4222" } })
 * ```
 * @since 0.1.0
 */
export const layer: (
  options: Options
) => Layer.Layer<Broker.Broker | JetStream.JetStream | NatsConnection.NatsConnection, Errors.ConnectionError> =
  layerJetStream

/**
 * JetStream broker configured from `Config` (environment variables `NATS_SERVERS`, `NATS_TOKEN`, …,
 * see `NatsConnection.config`); topology and consumer settings as data.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerConfig({ consumer: { maxDeliver: 5 } })
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: JetStream.Options = {},
  connection: Config.Config<NatsConnection.Options> = NatsConnection.config
): Layer.Layer<
  Broker.Broker | JetStream.JetStream | NatsConnection.NatsConnection,
  Errors.ConnectionError | Config.ConfigError
> => JetStream.layer(options).pipe(Layer.provideMerge(NatsConnection.layerConfig(connection)))

/**
 * Core NATS broker (at-most-once; group = queue group) with its own connection, plus the request-reply
 * connection service.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerCore({ connection: { servers: "nats://127.0.0.1:4222" } })
 * ```
 * @since 0.1.0
 */
export const layerCore = (
  options: { readonly connection: NatsConnection.Options }
): Layer.Layer<Broker.Broker | NatsConnection.NatsConnection, Errors.ConnectionError> =>
  CoreNats.layer.pipe(Layer.provideMerge(NatsConnection.layer(options.connection)))

/**
 * Core NATS broker configured from `Config` (see `NatsConnection.config`).
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerCoreConfig()
 * ```
 * @since 0.1.0
 */
export const layerCoreConfig = (
  connection: Config.Config<NatsConnection.Options> = NatsConnection.config
): Layer.Layer<Broker.Broker | NatsConnection.NatsConnection, Errors.ConnectionError | Config.ConfigError> =>
  CoreNats.layer.pipe(Layer.provideMerge(NatsConnection.layerConfig(connection)))

/**
 * Effect's `KeyValueStore` on a JetStream KV bucket (created when missing), e.g. as the idempotency
 * store of the consumer runtime. Needs a `NatsConnection` (provided by every layer above).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { NatsBroker } from "@switchyard/nats"
 * const broker = NatsBroker.layer({ connection: { servers: "nats://127.0.0.1:4222" } })
 * const live = NatsBroker.layerKeyValueStore("idempotency").pipe(Layer.provideMerge(broker))
 * ```
 * @since 0.1.0
 */
export const layerKeyValueStore = (
  bucket: string,
  options?: NatsKeyValueStore.Options
): Layer.Layer<KeyValueStore.KeyValueStore, Errors.ConnectionError, NatsConnection.NatsConnection> =>
  NatsKeyValueStore.layer(bucket, options)
