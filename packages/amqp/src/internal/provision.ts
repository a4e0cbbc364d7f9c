/**
 * Declare on first use, and again after a reconnect: every destination's exchange, group queue, parking and
 * retry queue goes through one kit `Provisioner` keyed by the topology's content, so concurrent first uses
 * share one declaration (one channel) and a failure is not remembered. The connection invalidates it on
 * every reconnect.
 */
import type { Channel } from "amqplib"
import { Errors } from "@switchyard/core"
import { Provisioner } from "@switchyard/core/adapter"
import { Effect } from "effect"
import type * as AmqpTopology from "../AmqpTopology.ts"
import * as AmqpErrors from "./errors.ts"

/** Runs one amqplib call; its failure is classified. */
export const run = <A>(call: () => Promise<A>): Effect.Effect<A, Errors.Reason> =>
  Effect.tryPromise({ try: call, catch: (error) => AmqpErrors.reasonOf(error) })

/** A `ConnectionError` of a reason. */
export const connectionError = (broker: string, reason: Errors.Reason): Errors.ConnectionError =>
  new Errors.ConnectionError({ broker, reason })

/** The `x-` arguments of a queue declaration. */
export const queueArguments = (queue: AmqpTopology.Queue): Record<string, string | number | boolean> => ({
  ...queue.arguments,
  ...(queue.type === "quorum" ? { "x-queue-type": "quorum" } : {}),
  ...(queue.messageTtl !== undefined ? { "x-message-ttl": queue.messageTtl } : {}),
  ...(queue.maxLength !== undefined ? { "x-max-length": queue.maxLength } : {}),
  ...(queue.deadLetterExchange !== undefined ? { "x-dead-letter-exchange": queue.deadLetterExchange } : {}),
  ...(queue.deadLetterRoutingKey !== undefined ? { "x-dead-letter-routing-key": queue.deadLetterRoutingKey } : {}),
  ...(queue.singleActiveConsumer !== undefined ? { "x-single-active-consumer": queue.singleActiveConsumer } : {}),
  ...(queue.deliveryLimit !== undefined ? { "x-delivery-limit": queue.deliveryLimit } : {})
})

const declareExchange = (channel: Channel, e: AmqpTopology.Exchange) =>
  run(() =>
    channel.assertExchange(e.name, e.type, {
      durable: e.durable ?? true,
      autoDelete: e.autoDelete ?? false,
      internal: e.internal ?? false,
      ...(e.alternateExchange !== undefined ? { alternateExchange: e.alternateExchange } : {}),
      ...(e.arguments !== undefined ? { arguments: { ...e.arguments } } : {})
    })
  )

const declareQueue = (channel: Channel, q: AmqpTopology.Queue) => {
  const quorum = q.type === "quorum"
  return run(() =>
    channel.assertQueue(q.name, {
      durable: quorum ? true : q.durable ?? true,
      exclusive: quorum ? false : q.exclusive ?? false,
      autoDelete: q.autoDelete ?? false,
      arguments: queueArguments(q)
    })
  )
}

const declareBinding = (channel: Channel, b: AmqpTopology.Binding) => {
  const args = b.arguments !== undefined ? { ...b.arguments } : {}
  return run(() =>
    b.destinationType === "exchange"
      ? channel.bindExchange(b.destination, b.source, b.pattern ?? "#", args)
      : channel.bindQueue(b.destination, b.source, b.pattern ?? "#", args)
  )
}

/** Declares a topology on a channel: exchanges, then queues, then bindings. */
export const declareOn = (channel: Channel, topology: AmqpTopology.Topology): Effect.Effect<void, Errors.Reason> =>
  Effect.forEach(topology.exchanges ?? [], (e) => declareExchange(channel, e), { discard: true }).pipe(
    Effect.andThen(Effect.forEach(topology.queues ?? [], (q) => declareQueue(channel, q), { discard: true })),
    Effect.andThen(Effect.forEach(topology.bindings ?? [], (b) => declareBinding(channel, b), { discard: true }))
  )

/** The declare-once cache of topologies, declared with `declare` (on a channel of the current connection). */
export const make = <E>(
  declare: (topology: AmqpTopology.Topology) => Effect.Effect<void, E>
): Effect.Effect<Provisioner.Provisioner<AmqpTopology.Topology, E>> =>
  Provisioner.make({ declare, identify: (topology) => JSON.stringify(topology) })

/** What Switchyard provisions for a destination, and for its groups, unless the user's topology declares it. */
export interface Plan {
  readonly destination: (name: string) => AmqpTopology.Topology
  readonly group: (destination: string, group: string) => AmqpTopology.Topology
}

/**
 * The provisioning plan: a destination is a durable topic exchange; a `.dlq` destination also gets its
 * parking queue (dead letters must never be dropped for lack of a subscriber); a group is its queue and
 * binding. What the user's topology names is left to it.
 */
export const plan = (user: AmqpTopology.Topology, queueType: "classic" | "quorum"): Plan => {
  const exchanges = new Set((user.exchanges ?? []).map((e) => e.name))
  const queues = new Set((user.queues ?? []).map((q) => q.name))
  return {
    destination: (name) => {
      const parking = name.endsWith(".dlq") && !queues.has(name)
      return {
        exchanges: exchanges.has(name) ? [] : [{ name, type: "topic", durable: true }],
        queues: parking ? [{ name, type: "classic", durable: true }] : [],
        bindings: parking ? [{ source: name, destination: name, pattern: "#" }] : []
      }
    },
    group: (destination, group) => {
      const queue = `${destination}.${group}`
      return queues.has(queue)
        ? {}
        : { queues: [{ name: queue, type: queueType, durable: true }], bindings: [{ source: destination, destination: queue, pattern: "#" }] }
    }
  }
}
