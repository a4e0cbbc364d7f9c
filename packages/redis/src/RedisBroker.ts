/**
 * The Redis Streams implementation of Switchyard's `Broker` contract (node-redis 6).
 *
 * - publish: one `XADD` per message, the envelope in the entry's fields (payload bytes exact), a batch
 *   pipelined in order; retention (`MAXLEN`/`MINID`) from `RedisTopology`; receipts carry the entry id.
 * - subscribe: group = consumer group (`XGROUP CREATE … MKSTREAM` at `0` or `$` per `startFrom`); each
 *   subscription is a consumer of its own name reading with `XREADGROUP … COUNT <room> BLOCK` on a dedicated,
 *   supervised connection (`prefetch` bounds what it holds); `ack` = `XACK`; what a crashed or stalled member
 *   held is claimed after the ack deadline (`XAUTOCLAIM`), its delivery count the envelope's `attempt`, and past
 *   `deliveryLimit` the `Consumer` dead-letters it; `nack` makes the entry claimable at once (or after its delay).
 * - Order: one stream is one log, delivered in order to one member; with several members of a group the
 *   entries are shared out, so order per key does not hold across members (`perKeyOrder: false`).
 * - browse (dead-letter operations): the stream from its first entry to its last at open, `ack` = `XDEL`;
 *   lag: the group's `lag` + `pending`; serverInfo: `INFO`.
 *
 * @since 0.1.0
 */
import { Clock, type Config, Effect, Layer, type Scope } from "effect"
import type { NodeRedis } from "@effect/platform-node"
import type { Redis } from "effect/persistence"
import { Broker } from "@switchyard/core"
import type { Capabilities, Envelope, Errors } from "@switchyard/core"
import * as Browse from "./internal/browse.ts"
import * as Publish from "./internal/publish.ts"
import { lag, serverInfo } from "./internal/serverInfo.ts"
import * as Subscription from "./internal/subscription.ts"
import * as RedisConnection from "./RedisConnection.ts"
import * as RedisTopology from "./RedisTopology.ts"

/**
 * What Redis Streams promise. Persistence is the server's (AOF or RDB): with neither, a restart loses
 * everything. Order holds within one member's deliveries of a stream, not per key across members. Delayed
 * nacks are capped at the ack deadline.
 *
 * @example
 * ```ts
 * import { RedisBroker } from "@switchyard/redis"
 * if (RedisBroker.capabilities.consumerGroups) console.log("groups")
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  consumerGroups: true,
  perKeyOrder: false,
  orderedDelivery: true,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: true,
  exactlyOnce: false,
  atMostOnce: false
}

/**
 * The options of {@link layer} (see `RedisConnection.Options`).
 *
 * @since 0.1.0
 */
export type Options = RedisConnection.Options

/**
 * Entries found trimmed before their group acknowledged them (`switchyard_redis_trimmed_unacked`, attributes
 * stream and group).
 *
 * @since 0.1.0
 */
export const trimmedUnacked = Subscription.trimmedUnacked

/**
 * The Redis attributes of a delivered message's `process` span: the entry id.
 *
 * @example
 * ```ts
 * import { RedisBroker } from "@switchyard/redis"
 * import type { Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * const attributes = RedisBroker.telemetryAttributes(envelope) // { "messaging.message.id": "1700000000000-0" }
 * ```
 * @since 0.1.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> =>
  envelope.coordinates.offset === undefined ? {} : { "messaging.redis.entry_id": envelope.coordinates.offset }

/**
 * Builds the broker from the connection and topology services.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Broker } from "@switchyard/core"
 * import { RedisBroker } from "@switchyard/redis"
 * const brokerLayer = Layer.effect(Broker.Broker, RedisBroker.make)
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<
  Broker.BrokerShape,
  never,
  RedisConnection.RedisConnection | RedisTopology.RedisTopology | Scope.Scope
> = Effect.gen(function*() {
  const connection = yield* RedisConnection.RedisConnection
  const topology = yield* RedisTopology.RedisTopology
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const { publish, publishEach } = Publish.make(connection, topology)
  const context: Subscription.Context = { connection, topology, now }
  return Broker.Broker.of({
    system: "redis",
    capabilities,
    publish,
    publishEach,
    // node-redis pipelines every call on the one connection and answers each XADD on its own, in order
    publishConcurrency: 8,
    subscribe: (destination, options) => Subscription.subscribe(context, destination, options),
    telemetryAttributes,
    browse: Browse.make(connection, now),
    lag: lag(connection),
    serverInfo: serverInfo(connection)
  })
})

type Services = Broker.Broker | RedisConnection.RedisConnection | RedisTopology.RedisTopology | Redis.Redis | NodeRedis.NodeRedis

const onConnection = <E>(
  connection: Layer.Layer<RedisConnection.RedisConnection | Redis.Redis | NodeRedis.NodeRedis, E>
): Layer.Layer<Services, E | Errors.ConnectionError> =>
  Layer.effect(Broker.Broker, make).pipe(
    Layer.provideMerge(RedisTopology.layer),
    Layer.provideMerge(connection)
  )

/**
 * The Redis broker layer: `Broker`, plus `RedisConnection`, `RedisTopology` and effect's `Redis` and
 * `NodeRedis` services on the same client.
 *
 * @example
 * ```ts
 * import { RedisBroker } from "@switchyard/redis"
 * const layer = RedisBroker.layer({ url: "redis://127.0.0.1:6379", ackDeadline: "30 seconds" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Services, Errors.ConnectionError> =>
  onConnection(RedisConnection.layer(options))

/**
 * The broker layer from configuration (by default `RedisConnection.config()`, i.e. `REDIS_*` environment
 * variables); bad configuration fails with `ConnectionError` reason `Invalid`.
 *
 * @example
 * ```ts
 * import { RedisBroker, RedisConnection } from "@switchyard/redis"
 * const layer = RedisBroker.layerConfig(RedisConnection.config("REDIS"))
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Wrap<Options> = RedisConnection.config()
): Layer.Layer<Services, Errors.ConnectionError> => onConnection(RedisConnection.layerConfig(config))
