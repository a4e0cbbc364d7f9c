/**
 * RabbitMQ topology as data: exchanges, queues and bindings, and the admin operations on them. A `Topology`
 * given to the connection is declared idempotently on every (re)connection; what Switchyard provisions on
 * first use is declared once per connection.
 *
 * Switchyard's own mapping: a destination is a durable `topic` exchange of that name; a consumer group is a
 * durable queue `<destination>.<group>` bound to it with routing key `#`.
 *
 * @since 0.1.0
 */
import type { Channel } from "amqplib"
import type { Errors } from "@switchyard/core"
import { Effect } from "effect"
import * as AmqpConnection from "./AmqpConnection.ts"
import * as Provision from "./internal/provision.ts"

/**
 * An exchange declaration.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const orders: AmqpTopology.Exchange = { name: "orders", type: "topic" }
 * ```
 * @since 0.1.0
 */
export interface Exchange {
  readonly name: string
  readonly type: "direct" | "topic" | "fanout" | "headers"
  /** Default `true`. */
  readonly durable?: boolean | undefined
  readonly autoDelete?: boolean | undefined
  readonly internal?: boolean | undefined
  readonly alternateExchange?: string | undefined
  readonly arguments?: Readonly<Record<string, string | number | boolean>> | undefined
}

/**
 * A queue declaration. `type` selects a classic or a quorum queue (quorum queues are always durable and never
 * exclusive).
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const work: AmqpTopology.Queue = {
 *   name: "orders.billing", type: "quorum", deadLetterExchange: "orders.dlx", singleActiveConsumer: true
 * }
 * ```
 * @since 0.1.0
 */
export interface Queue {
  readonly name: string
  /** Default `"classic"`. */
  readonly type?: "classic" | "quorum" | undefined
  /** Default `true`. */
  readonly durable?: boolean | undefined
  readonly exclusive?: boolean | undefined
  readonly autoDelete?: boolean | undefined
  /** `x-message-ttl`, milliseconds. */
  readonly messageTtl?: number | undefined
  /** `x-max-length`. */
  readonly maxLength?: number | undefined
  /** `x-dead-letter-exchange` (`""` is the default exchange). */
  readonly deadLetterExchange?: string | undefined
  /** `x-dead-letter-routing-key`. */
  readonly deadLetterRoutingKey?: string | undefined
  /** `x-single-active-consumer`. */
  readonly singleActiveConsumer?: boolean | undefined
  /** `x-delivery-limit` (quorum queues only). */
  readonly deliveryLimit?: number | undefined
  /** Any other `x-` argument. */
  readonly arguments?: Readonly<Record<string, string | number | boolean>> | undefined
}

/**
 * A binding of a queue (or an exchange, with `destinationType: "exchange"`) to a source exchange.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const b: AmqpTopology.Binding = { source: "orders", destination: "orders.billing", pattern: "eu.#" }
 * ```
 * @since 0.1.0
 */
export interface Binding {
  readonly source: string
  readonly destination: string
  /** Default `"queue"`. */
  readonly destinationType?: "queue" | "exchange" | undefined
  /** Default `"#"`. */
  readonly pattern?: string | undefined
  readonly arguments?: Readonly<Record<string, string | number | boolean>> | undefined
}

/**
 * A whole topology.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const topology: AmqpTopology.Topology = {
 *   exchanges: [{ name: "orders", type: "topic" }],
 *   queues: [{ name: "orders.billing", type: "quorum" }],
 *   bindings: [{ source: "orders", destination: "orders.billing", pattern: "#" }]
 * }
 * ```
 * @since 0.1.0
 */
export interface Topology {
  readonly exchanges?: ReadonlyArray<Exchange> | undefined
  readonly queues?: ReadonlyArray<Queue> | undefined
  readonly bindings?: ReadonlyArray<Binding> | undefined
}

/**
 * The empty topology.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const t = AmqpTopology.merge(AmqpTopology.empty, { exchanges: [{ name: "a", type: "fanout" }] })
 * ```
 * @since 0.1.0
 */
export const empty: Topology = { exchanges: [], queues: [], bindings: [] }

/**
 * Concatenates topologies.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const t = AmqpTopology.merge({ exchanges: [{ name: "a", type: "topic" }] }, { queues: [{ name: "q" }] })
 * ```
 * @since 0.1.0
 */
export const merge = (...topologies: ReadonlyArray<Topology>): Topology => ({
  exchanges: topologies.flatMap((t) => t.exchanges ?? []),
  queues: topologies.flatMap((t) => t.queues ?? []),
  bindings: topologies.flatMap((t) => t.bindings ?? [])
})

/**
 * The topology Switchyard provisions for a destination: a durable topic exchange.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const t = AmqpTopology.destination("orders") // { exchanges: [{ name: "orders", type: "topic" }] }
 * ```
 * @since 0.1.0
 */
export const destination = (name: string): Topology => ({ exchanges: [{ name, type: "topic", durable: true }] })

/**
 * The queue name of a consumer group on a destination: `<destination>.<group>`.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * AmqpTopology.groupQueueName("orders", "billing") // "orders.billing"
 * ```
 * @since 0.1.0
 */
export const groupQueueName = (destinationName: string, group: string): string => `${destinationName}.${group}`

/**
 * The topology of a consumer group: its durable queue bound to the destination's exchange with `#`.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const t = AmqpTopology.group("orders", "billing", "quorum")
 * ```
 * @since 0.1.0
 */
export const group = (destinationName: string, groupName: string, type: "classic" | "quorum"): Topology => {
  const queue = groupQueueName(destinationName, groupName)
  return {
    queues: [{ name: queue, type, durable: true }],
    bindings: [{ source: destinationName, destination: queue, pattern: "#" }]
  }
}

/**
 * A consumer group declared up front: the destination's topic exchange, the group's durable queue and its
 * binding. Give it as (part of) the connection's `topology` so that the queue exists before the first
 * consumer starts: messages published before then are kept for the group instead of being unroutable.
 *
 * @example
 * ```ts
 * import { AmqpBroker, AmqpTopology } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layer({
 *   url: "amqp://127.0.0.1",
 *   topology: AmqpTopology.merge(AmqpTopology.consumerGroup("orders", "email"), AmqpTopology.consumerGroup("orders", "billing"))
 * })
 * ```
 * @since 0.2.0
 */
export const consumerGroup = (
  destinationName: string,
  groupName: string,
  type: "classic" | "quorum" = "classic"
): Topology => merge(destination(destinationName), group(destinationName, groupName, type))

/**
 * The delayed-retry queue of a work queue: messages wait `delayMillis` in it, then dead-letter back to the
 * work queue through the default exchange (no plugin needed).
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const t = AmqpTopology.retryQueue("orders.billing", 5000) // queue "orders.billing.retry.5000"
 * ```
 * @since 0.1.0
 */
export const retryQueue = (workQueue: string, delayMillis: number): Queue => ({
  name: `${workQueue}.retry.${delayMillis}`,
  type: "classic",
  durable: true,
  messageTtl: delayMillis,
  deadLetterExchange: "",
  deadLetterRoutingKey: workQueue
})

/**
 * Declares a topology on a channel of your own (a raw amqplib channel, e.g. in a test): exchanges, then
 * queues, then bindings. Idempotent as long as it matches what exists; a conflicting declaration fails with
 * reason `TopologyConflict` and the broker's 406 text (and closes that channel, as RabbitMQ does).
 *
 * @example
 * ```ts
 * import type { Channel } from "amqplib"
 * import { AmqpTopology } from "@switchyard/amqp"
 * declare const channel: Channel
 * const declared = AmqpTopology.declareOn(channel, AmqpTopology.consumerGroup("orders", "billing"))
 * ```
 * @category admin
 * @since 0.3.0
 */
export const declareOn = (channel: Channel, topology: Topology): Effect.Effect<void, Errors.ConnectionError> =>
  Provision.declareOn(channel, topology).pipe(Effect.mapError((reason) => Provision.connectionError("rabbitmq", reason)))

/**
 * Declares a topology now, on the layer's connection, without caching it (it is not re-declared after a
 * reconnect: give it as the connection's `topology` for that).
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const declared = AmqpTopology.declare({ exchanges: [{ name: "audit", type: "fanout" }] })
 * ```
 * @category admin
 * @since 0.3.0
 */
export const declare = (topology: Topology): Effect.Effect<void, Errors.ConnectionError, AmqpConnection.AmqpConnection> =>
  AmqpConnection.AmqpConnection.use((connection) =>
    connection.withChannel((channel) => Provision.declareOn(channel, topology))
  )

/**
 * Deletes a queue (and the messages in it). Deleting one that does not exist succeeds.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const deleted = AmqpTopology.deleteQueue("orders.billing")
 * ```
 * @category admin
 * @since 0.3.0
 */
export const deleteQueue = (name: string): Effect.Effect<void, Errors.ConnectionError, AmqpConnection.AmqpConnection> =>
  AmqpConnection.AmqpConnection.use((connection) =>
    connection.withChannel((channel) => Provision.run(() => channel.deleteQueue(name)))
  )

/**
 * Deletes an exchange. Deleting one that does not exist succeeds.
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const deleted = AmqpTopology.deleteExchange("orders")
 * ```
 * @category admin
 * @since 0.3.0
 */
export const deleteExchange = (name: string): Effect.Effect<void, Errors.ConnectionError, AmqpConnection.AmqpConnection> =>
  AmqpConnection.AmqpConnection.use((connection) =>
    connection.withChannel((channel) => Provision.run(() => channel.deleteExchange(name)))
  )

/**
 * The ready messages of a queue (a passive declare; a queue that does not exist fails with `NotFound`).
 *
 * @example
 * ```ts
 * import { AmqpTopology } from "@switchyard/amqp"
 * const depth = AmqpTopology.queueDepth("orders.billing")
 * ```
 * @category admin
 * @since 0.3.0
 */
export const queueDepth = (name: string): Effect.Effect<number, Errors.ConnectionError, AmqpConnection.AmqpConnection> =>
  AmqpConnection.AmqpConnection.use((connection) =>
    connection.withChannel((channel) => Provision.run(() => channel.checkQueue(name).then((q) => q.messageCount)))
  )
