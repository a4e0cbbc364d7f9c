/**
 * RabbitMQ topology as data: exchanges, queues and bindings. A `Topology` is declared idempotently when the
 * `AmqpConnection` layer starts and declared again after every reconnect.
 *
 * Switchyard's own mapping: a destination is a durable `topic` exchange of that name; a consumer group is a
 * durable queue `<destination>.<group>` bound to it with routing key `#`.
 *
 * @since 0.1.0
 */
import type { Channel } from "amqplib"

/**
 * An exchange declaration.
 *
 * @example
 * ```ts
 * import { Topology } from "@switchyard/amqp"
 * const orders: Topology.Exchange = { name: "orders", type: "topic" }
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
 * import { Topology } from "@switchyard/amqp"
 * const work: Topology.Queue = {
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
 * import { Topology } from "@switchyard/amqp"
 * const b: Topology.Binding = { source: "orders", destination: "orders.billing", pattern: "eu.#" }
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
 * import { Topology } from "@switchyard/amqp"
 * const topology: Topology.Topology = {
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
 * import { Topology } from "@switchyard/amqp"
 * const t = Topology.merge(Topology.empty, { exchanges: [{ name: "a", type: "fanout" }] })
 * ```
 * @since 0.1.0
 */
export const empty: Topology = { exchanges: [], queues: [], bindings: [] }

/**
 * Concatenates topologies.
 *
 * @example
 * ```ts
 * import { Topology } from "@switchyard/amqp"
 * const t = Topology.merge({ exchanges: [{ name: "a", type: "topic" }] }, { queues: [{ name: "q" }] })
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
 * import { Topology } from "@switchyard/amqp"
 * const t = Topology.destination("orders") // { exchanges: [{ name: "orders", type: "topic" }] }
 * ```
 * @since 0.1.0
 */
export const destination = (name: string): Topology => ({ exchanges: [{ name, type: "topic", durable: true }] })

/**
 * The queue name of a consumer group on a destination: `<destination>.<group>`.
 *
 * @example
 * ```ts
 * import { Topology } from "@switchyard/amqp"
 * Topology.groupQueueName("orders", "billing") // "orders.billing"
 * ```
 * @since 0.1.0
 */
export const groupQueueName = (destinationName: string, group: string): string => `${destinationName}.${group}`

/**
 * The topology of a consumer group: its durable queue bound to the destination's exchange with `#`.
 *
 * @example
 * ```ts
 * import { Topology } from "@switchyard/amqp"
 * const t = Topology.group("orders", "billing", "quorum")
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
 * import { AmqpBroker, Topology } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layer({
 *   url: "amqp://127.0.0.1",
 *   topology: Topology.merge(Topology.consumerGroup("orders", "email"), Topology.consumerGroup("orders", "billing"))
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
 * import { Topology } from "@switchyard/amqp"
 * const t = Topology.retryQueue("orders.billing", 5000) // queue "orders.billing.retry.5000"
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

/** @internal */
export const queueArguments = (queue: Queue): Record<string, string | number | boolean> => {
  const args: Record<string, string | number | boolean> = { ...queue.arguments }
  if (queue.type === "quorum") args["x-queue-type"] = "quorum"
  if (queue.messageTtl !== undefined) args["x-message-ttl"] = queue.messageTtl
  if (queue.maxLength !== undefined) args["x-max-length"] = queue.maxLength
  if (queue.deadLetterExchange !== undefined) args["x-dead-letter-exchange"] = queue.deadLetterExchange
  if (queue.deadLetterRoutingKey !== undefined) args["x-dead-letter-routing-key"] = queue.deadLetterRoutingKey
  if (queue.singleActiveConsumer !== undefined) args["x-single-active-consumer"] = queue.singleActiveConsumer
  if (queue.deliveryLimit !== undefined) args["x-delivery-limit"] = queue.deliveryLimit
  return args
}

/**
 * Declares a topology on a channel (promise based; used by `AmqpConnection`). Exchanges first, then queues,
 * then bindings. Declarations are idempotent as long as they match what exists.
 *
 * @internal
 */
export const declareOn = async (channel: Channel, topology: Topology): Promise<void> => {
  for (const e of topology.exchanges ?? []) {
    await channel.assertExchange(e.name, e.type, {
      durable: e.durable ?? true,
      autoDelete: e.autoDelete ?? false,
      internal: e.internal ?? false,
      ...(e.alternateExchange !== undefined ? { alternateExchange: e.alternateExchange } : {}),
      ...(e.arguments !== undefined ? { arguments: { ...e.arguments } } : {})
    })
  }
  for (const q of topology.queues ?? []) {
    const quorum = q.type === "quorum"
    await channel.assertQueue(q.name, {
      durable: quorum ? true : q.durable ?? true,
      exclusive: quorum ? false : q.exclusive ?? false,
      autoDelete: q.autoDelete ?? false,
      arguments: queueArguments(q)
    })
  }
  for (const b of topology.bindings ?? []) {
    const args = b.arguments !== undefined ? { ...b.arguments } : {}
    if (b.destinationType === "exchange") {
      await channel.bindExchange(b.destination, b.source, b.pattern ?? "#", args)
    } else {
      await channel.bindQueue(b.destination, b.source, b.pattern ?? "#", args)
    }
  }
}
