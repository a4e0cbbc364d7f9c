/**
 * The NATS brokers: JetStream (durable, the default) and core NATS (at-most-once), each as one Layer that
 * also provides the connection (and, for JetStream, the `NatsTopology` service).
 *
 * JetStream: streams declared as data or provisioned on first use, pipelined publishes resolved on PubAck
 * (`Nats-Msg-Id` dedup), a durable pull consumer per group with explicit acks and automatic `working()`
 * heartbeats, ordered consumers for replay and for operators' reads of dead-letter subjects
 * (`Broker.browse`: `ack` deletes the message from the stream), consumer lag and server info.
 *
 * Core NATS: subjects with wildcards, queue groups as consumer groups, headers; no persistence, no
 * redelivery; a subscription that falls `prefetch` deliveries behind drops what arrives (counted).
 *
 * @since 0.1.0
 */
import type { JsMsg } from "@nats-io/jetstream"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Broker, Capabilities, type Envelope, Errors } from "@switchyard/core"
import { ConnectionOptions } from "@switchyard/core/adapter"
import { Clock, Config, Context, Duration, Effect, Layer, type Metric, Stream } from "effect"
import * as Browse from "./internal/browse.ts"
import * as CorePublish from "./internal/corePublish.ts"
import * as CoreSubscription from "./internal/coreSubscription.ts"
import { reasonOf } from "./internal/errors.ts"
import * as Provision from "./internal/provision.ts"
import * as Publish from "./internal/publish.ts"
import * as Replay from "./internal/replay.ts"
import * as ServerInfo from "./internal/serverInfo.ts"
import * as Subscription from "./internal/subscription.ts"
import * as NatsConnection from "./NatsConnection.ts"
import { type ConsumerSettings, NatsTopology, type StreamDeclaration, type StreamSettings } from "./NatsTopology.ts"

/**
 * The JetStream broker's settings: topology and consumer settings as data.
 *
 * @example
 * ```ts
 * import type { NatsBroker } from "@switchyard/nats"
 * const settings: NatsBroker.JetStreamOptions = {
 *   streams: [{ name: "ORDERS", subjects: ["orders.>"] }],
 *   consumer: { ackWait: "10 seconds", maxDeliver: 5 }
 * }
 * ```
 * @since 0.3.0
 */
export interface JetStreamOptions {
  /** Streams declared as data; they take precedence over first-use provisioning. */
  readonly streams?: ReadonlyArray<StreamDeclaration> | undefined
  /** Settings of streams provisioned on first use (default: file storage, limits retention). */
  readonly defaultStream?: StreamSettings | undefined
  /** Consumer settings of every subscription. */
  readonly consumer?: ConsumerSettings | undefined
  /** Per-destination consumer settings (override `consumer`). */
  readonly consumers?: Readonly<Record<string, ConsumerSettings>> | undefined
  /** Most publishes awaiting their PubAck at once in one `publish` call (default 1024). */
  readonly publishWindow?: number | undefined
  /** JetStream API / PubAck timeout (default 5 seconds). */
  readonly apiTimeout?: Duration.Input | undefined
}

/**
 * Options of {@link layer}: the connection plus the JetStream settings.
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
export interface Options extends JetStreamOptions {
  readonly connection: NatsConnection.Options
}

/**
 * What the JetStream broker honestly promises.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * console.log(NatsBroker.capabilities.persistent) // true
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  ...Capabilities.none,
  consumerGroups: true,
  orderedDelivery: true,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: true
}

/**
 * What core NATS promises: queue groups, nothing durable, at most once.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * console.log(NatsBroker.capabilitiesCore.atMostOnce) // true
 * ```
 * @since 0.1.0
 */
export const capabilitiesCore: Capabilities.Capabilities = {
  ...Capabilities.none,
  consumerGroups: true,
  atMostOnce: true
}

/**
 * A delivery from JetStream: a `RawDelivery` with the JetStream-only settlements.
 *
 * @example
 * ```ts
 * import type { NatsBroker } from "@switchyard/nats"
 * declare const delivery: NatsBroker.JetStreamDelivery
 * const poison = delivery.term("cannot be parsed")
 * ```
 * @since 0.3.0
 */
export interface JetStreamDelivery extends Broker.RawDelivery {
  /** Terminates the message: never redelivered (counts as the settlement). */
  readonly term: (reason?: string) => Effect.Effect<void, Errors.AckError>
  /** Resets the ack-wait timer now (sent automatically before ack-wait runs out anyway). */
  readonly working: Effect.Effect<void, Errors.AckError>
  /** The raw nats.js message. */
  readonly message: JsMsg
}

/**
 * Is this delivery from JetStream (so `term` / `working` are available)?
 *
 * @example
 * ```ts
 * import type { Broker } from "@switchyard/core"
 * import { NatsBroker } from "@switchyard/nats"
 * declare const d: Broker.RawDelivery
 * const settle = NatsBroker.isJetStreamDelivery(d) ? d.term("poison") : d.nack()
 * ```
 * @since 0.3.0
 */
export const isJetStreamDelivery = (delivery: Broker.RawDelivery): delivery is JetStreamDelivery =>
  "term" in delivery && "message" in delivery

/**
 * The coordinates of a JetStream delivery: `sequence` is the stream sequence (stable across redeliveries,
 * so `<stream>/<sequence>` is the id of a message that carries none), `consumerSequence` the consumer's
 * delivery sequence, `subject` the concrete subject (the destination may be a wildcard filter).
 *
 * @example
 * ```ts
 * import type { Envelope } from "@switchyard/core"
 * import { NatsBroker } from "@switchyard/nats"
 * declare const envelope: Envelope.Envelope
 * const stream = NatsBroker.isJetStreamCoordinates(envelope.coordinates) ? envelope.coordinates.stream : undefined
 * ```
 * @since 0.3.0
 */
export interface Coordinates extends Envelope.Coordinates {
  readonly sequence: number
  readonly stream: string
  readonly consumerSequence: number
  readonly subject: string
}

/**
 * Are these the coordinates of a JetStream delivery?
 *
 * @example
 * ```ts
 * import type { Envelope } from "@switchyard/core"
 * import { NatsBroker } from "@switchyard/nats"
 * declare const coordinates: Envelope.Coordinates
 * if (NatsBroker.isJetStreamCoordinates(coordinates)) console.log(coordinates.stream, coordinates.sequence)
 * ```
 * @since 0.3.0
 */
export const isJetStreamCoordinates = (coordinates: Envelope.Coordinates): coordinates is Coordinates =>
  "stream" in coordinates && typeof coordinates.stream === "string" && typeof coordinates.sequence === "number" &&
  "consumerSequence" in coordinates && typeof coordinates.consumerSequence === "number"

/**
 * Core NATS deliveries a subscription dropped because its queue of `prefetch` deliveries was full: the
 * consumer did not keep up, and core NATS has no flow control to slow the publishers. Attributes:
 * `messaging.destination.name` (the subscribed subject) and `messaging.consumer.group.name`. Each burst of
 * drops is also logged as a warning.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { NatsBroker } from "@switchyard/nats"
 * const dropped = Metric.value(Metric.withAttributes(NatsBroker.droppedDeliveries, {
 *   "messaging.destination.name": "orders", "messaging.consumer.group.name": "billing"
 * }))
 * ```
 * @since 0.3.0
 */
export const droppedDeliveries: Metric.Metric<number, Metric.CounterState<number>> = CoreSubscription.droppedDeliveries

/**
 * JetStream deliveries a subscription handed back to the server (redelivered shortly, never lost) because
 * its queue was full: another member of the group raised the group's `max_ack_pending` above this member's
 * prefetch. Same attributes as {@link droppedDeliveries}.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { NatsBroker } from "@switchyard/nats"
 * const handedBack = Metric.value(Metric.withAttributes(NatsBroker.overflowedDeliveries, {
 *   "messaging.destination.name": "orders", "messaging.consumer.group.name": "billing"
 * }))
 * ```
 * @since 0.3.0
 */
export const overflowedDeliveries: Metric.Metric<number, Metric.CounterState<number>> = Subscription.overflowedDeliveries

/**
 * Options of {@link replay}.
 *
 * @example
 * ```ts
 * import type { NatsBroker } from "@switchyard/nats"
 * const options: NatsBroker.ReplayOptions = { fromSequence: 100 }
 * ```
 * @since 0.3.0
 */
export interface ReplayOptions {
  /** Start at this stream sequence (default: the first message). */
  readonly fromSequence?: number | undefined
  /** Keep following new messages (default false: end once caught up). */
  readonly live?: boolean | undefined
}

/**
 * Replays a JetStream destination with an ordered consumer (no acks, no durable state).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { NatsBroker } from "@switchyard/nats"
 * const history = NatsBroker.replay("orders").pipe(Stream.runCollect)
 * ```
 * @since 0.3.0
 */
export const replay = (
  destination: string,
  options?: ReplayOptions
): Stream.Stream<Envelope.Envelope, Errors.SubscribeError, NatsTopology> =>
  Stream.unwrap(Effect.gen(function*() {
    const topology = yield* NatsTopology
    const clock = yield* Clock.Clock
    return Replay.replay({ ...topology, now: () => clock.currentTimeMillisUnsafe() }, destination, options)
  }))

const jetStreamTelemetry = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => {
  const c = envelope.coordinates
  if (!isJetStreamCoordinates(c)) return c.sequence === undefined ? {} : { "messaging.nats.stream.sequence": c.sequence }
  return {
    "messaging.nats.stream": c.stream,
    "messaging.nats.stream.sequence": c.sequence,
    "messaging.nats.consumer.sequence": c.consumerSequence,
    "messaging.nats.subject": c.subject
  }
}

const coreTelemetry = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => ({
  "messaging.nats.subject": envelope.coordinates.destination
})

const jetStreamError = (cause: unknown) => new Errors.ConnectionError({ broker: "nats-jetstream", reason: reasonOf(cause), cause })

/** The JetStream topology of a connection: clients, streams (re-provisioned after a reconnect), declarations. */
const makeTopology = Effect.fn("NatsBroker.topology")(function*(options: JetStreamOptions) {
  const { nc, statusChanges } = yield* NatsConnection.NatsConnection
  const timeout = Duration.toMillis(Duration.fromInputUnsafe(options.apiTimeout ?? "5 seconds"))
  const manager = yield* Effect.tryPromise({ try: () => jetstreamManager(nc, { timeout }), catch: jetStreamError })
  const client = jetstream(nc, { timeout })
  const declared = options.streams ?? []
  yield* Effect.forEach(declared, (decl) => Provision.declareStream(manager, decl), { discard: true }).pipe(
    Effect.mapError((e) => new Errors.ConnectionError({ broker: "nats-jetstream", reason: e.reason, cause: e.cause }))
  )
  const streams = yield* Provision.makeStreams(manager, declared, options.defaultStream ?? {})
  // The server may have lost what was declared (a restart without storage): declare again on next use.
  yield* statusChanges.pipe(
    Stream.filter((status) => status.type === "reconnect"),
    Stream.runForEach(() => streams.forgetAll),
    Effect.forkScoped
  )
  const topology = NatsTopology.of({
    client,
    manager,
    streamFor: streams.streamFor,
    findStream: streams.findStream,
    declareStream: (decl) => Provision.declareStream(manager, decl),
    deleteStream: (name) => Effect.andThen(Provision.deleteStream(manager, name), streams.forgetAll)
  })
  return { nc, client, manager, streams, topology }
})

const makeJetStream = Effect.fn("NatsBroker.makeJetStream")(function*(options: JetStreamOptions) {
  const { client, manager, nc, streams, topology } = yield* makeTopology(options)
  const clock = yield* Clock.Clock
  const now = (): number => clock.currentTimeMillisUnsafe()
  const ctx: Subscription.JetStreamContext = {
    nc,
    client,
    manager,
    streams,
    now,
    settingsFor: (destination) => ({ ...options.consumer, ...options.consumers?.[destination] })
  }
  const window = Math.max(1, options.publishWindow ?? 1024)
  const browsing: Browse.BrowseContext = { client, manager, findStream: streams.findStream, now }
  const broker = Broker.Broker.of({
    system: "nats-jetstream",
    capabilities,
    publish: (destination, messages, onConfirmed) => Publish.publish(ctx, destination, messages, window, onConfirmed),
    // concurrent batches are pipelined on the one connection, each message acknowledged by its own PubAck
    publishConcurrency: 8,
    subscribe: (destination, opts) => Subscription.subscribe(ctx, destination, opts),
    telemetryAttributes: jetStreamTelemetry,
    browse: (destination, browseOptions) => Browse.browse(browsing, destination, browseOptions),
    lag: (destination, group) => Browse.lag(browsing, destination, group),
    serverInfo: ServerInfo.jetStream(nc, manager)
  })
  return Context.make(NatsTopology, topology).pipe(Context.add(Broker.Broker, broker))
})

const makeCore = Effect.gen(function*() {
  const { nc } = yield* NatsConnection.NatsConnection
  const clock = yield* Clock.Clock
  const now = (): number => clock.currentTimeMillisUnsafe()
  // No `browse`: core NATS keeps nothing to read back. No `lag` either: nothing is pending anywhere.
  return Broker.Broker.of({
    system: "nats",
    capabilities: capabilitiesCore,
    publish: (destination, messages) => CorePublish.publish(nc, destination, messages),
    publishConcurrency: 8,
    subscribe: (destination, options) => CoreSubscription.subscribe(nc, now, destination, options),
    telemetryAttributes: coreTelemetry,
    serverInfo: ServerInfo.core(nc)
  })
})

/**
 * The JetStream broker (the default NATS broker) with its own connection (drained on shutdown) and the
 * `NatsTopology` service.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layer({ connection: { servers: "nats://127.0.0.1:4222" } })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<Broker.Broker | NatsTopology | NatsConnection.NatsConnection, Errors.ConnectionError> =>
  Layer.effectContext(makeJetStream(options)).pipe(Layer.provideMerge(NatsConnection.layer(options.connection)))

/**
 * The broker's options read from the environment under a prefix: the connection from
 * `NatsConnection.config(prefix)` (`NATS_SERVERS`, `NATS_USERNAME`, …); the JetStream settings keep their
 * defaults (map them onto the Config to change them).
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { NatsBroker } from "@switchyard/nats"
 * const orders = NatsBroker.config("ORDERS_NATS").pipe(Config.map((options) => ({ ...options, consumer: { maxDeliver: 5 } })))
 * ```
 * @since 0.3.0
 */
export const config = (prefix = "NATS"): Config.Config<Options> =>
  Config.map(NatsConnection.config(prefix), (connection): Options => ({ connection }))

/**
 * The JetStream broker with its options from a `Config.Wrap<Options>` (default {@link config}: the `NATS_*`
 * environment variables), like every adapter's `layerConfig`; a bad configuration fails with a
 * `ConnectionError` of reason `Invalid`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerConfig(NatsBroker.config().pipe(Config.map((options) => ({ ...options, consumer: { maxDeliver: 5 } }))))
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: Config.Wrap<Options> = config()
): Layer.Layer<Broker.Broker | NatsTopology | NatsConnection.NatsConnection, Errors.ConnectionError> =>
  Layer.unwrap(Effect.map(ConnectionOptions.fromConfig("nats", options), layer))

/**
 * Options of {@link layerCore}.
 *
 * @example
 * ```ts
 * import type { NatsBroker } from "@switchyard/nats"
 * const options: NatsBroker.CoreOptions = { connection: { servers: "nats://127.0.0.1:4222" } }
 * ```
 * @since 0.3.0
 */
export interface CoreOptions {
  readonly connection: NatsConnection.Options
}

/**
 * The core NATS broker (at-most-once; group = queue group) with its own connection.
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerCore({ connection: { servers: "nats://127.0.0.1:4222" } })
 * ```
 * @since 0.1.0
 */
export const layerCore = (
  options: CoreOptions
): Layer.Layer<Broker.Broker | NatsConnection.NatsConnection, Errors.ConnectionError> =>
  Layer.effect(Broker.Broker, makeCore).pipe(Layer.provideMerge(NatsConnection.layer(options.connection)))

/**
 * The core NATS broker with its options from a `Config.Wrap<CoreOptions>` (default {@link config}: the `NATS_*`
 * environment variables).
 *
 * @example
 * ```ts
 * import { NatsBroker } from "@switchyard/nats"
 * const live = NatsBroker.layerCoreConfig()
 * ```
 * @since 0.1.0
 */
export const layerCoreConfig = (
  options: Config.Wrap<CoreOptions> = config()
): Layer.Layer<Broker.Broker | NatsConnection.NatsConnection, Errors.ConnectionError> =>
  Layer.unwrap(Effect.map(ConnectionOptions.fromConfig("nats", options), layerCore))

