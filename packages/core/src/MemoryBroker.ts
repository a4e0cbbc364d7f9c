/**
 * The in-memory broker: a product feature, not a mock. Topic logs with partitions (by key hash), consumer
 * groups with per-group offsets, competing members in a group, redelivery on nack with a delay, and
 * retention. Every wait goes through Effect's `Clock`, so it is fully deterministic under `TestClock`.
 *
 * It provides the core `Broker` service plus an inspection service (`MemoryBroker`) for tests: what was
 * published, what sits in a dead-letter destination, group offsets.
 *
 * @since 0.1.0
 */
import { Array as Arr, Clock, Context, Deferred, Duration, Effect, identity, Layer, Semaphore, Stream } from "effect"
import * as Cause from "effect/Cause"
import * as IncomingEnvelope from "./adapter/IncomingEnvelope.ts"
import * as Settlement from "./adapter/Settlement.ts"
import * as Broker from "./Broker.ts"
import type { Capabilities } from "./Capabilities.ts"
import * as Caps from "./Capabilities.ts"
import type { Envelope, OutgoingMessage, PublishReceipt } from "./Envelope.ts"
import { keyHash } from "./internal/hash.ts"
import * as State from "./internal/memory/state.ts"

/**
 * Options of the in-memory broker.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Partitions of every topic (default 4). */
  readonly partitions?: number | undefined
  /** Keep at most this many records per partition (default: unlimited). */
  readonly maxMessagesPerPartition?: number | undefined
  /** Drop records older than this (default: keep forever). */
  readonly maxAge?: Duration.Input | undefined
}

/**
 * What the in-memory broker promises.
 *
 * @category capabilities
 * @since 0.1.0
 */
export const capabilities: Capabilities = {
  ...Caps.none,
  consumerGroups: true,
  perKeyOrder: true,
  orderedDelivery: true,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: true
}

/**
 * Inspection API of the in-memory broker, for tests and demos.
 *
 * @category models
 * @since 0.1.0
 */
export interface MemoryBrokerShape {
  /** Every message currently retained in a destination, in partition then offset order. */
  readonly published: (destination: string) => Effect.Effect<ReadonlyArray<Envelope>>
  /** Number of messages ever published to a destination (retention does not lower it). */
  readonly publishedCount: (destination: string) => Effect.Effect<number>
  /** Dead-lettered messages of a destination (the `<destination>.dlq` destination). */
  readonly deadLetters: (destination: string) => Effect.Effect<ReadonlyArray<Envelope>>
  /** Committed offset per partition for a group (`[]` if the group never subscribed). */
  readonly committedOffsets: (destination: string, group: string) => Effect.Effect<ReadonlyArray<number>>
  /** Messages not yet acknowledged by a group, over all partitions. */
  readonly lag: (destination: string, group: string) => Effect.Effect<number>
  /** Deliveries a group holds unacknowledged right now. */
  readonly inFlight: (destination: string, group: string) => Effect.Effect<number>
}

/**
 * The inspection service tag.
 *
 * @example
 * ```ts
 * import { MemoryBroker } from "@switchyard/core"
 * const dlq = MemoryBroker.MemoryBroker.use((b) => b.deadLetters("orders"))
 * ```
 * @category services
 * @since 0.1.0
 */
export class MemoryBroker extends Context.Service<MemoryBroker, MemoryBrokerShape>()("@switchyard/core/MemoryBroker") {}

/**
 * A stored record as delivered, through the adapter kit's fallbacks like on every broker: a record published
 * without an id gets the stable `<destination>/<partition>/<offset>`, one without a usable time its store time.
 */
const toEnvelope = (destination: string, partition: number, record: State.StoredRecord, attempt: number): Envelope => {
  const message = record.message
  const offset = String(record.offset)
  return IncomingEnvelope.finish({
    id: message.id,
    brokerId: () => `${destination}/${partition}/${offset}`,
    key: message.key,
    keyBytes: message.keyBytes,
    headers: message.headers,
    timestamp: message.timestamp,
    brokerTimestamp: record.storedAt,
    contentType: message.contentType,
    payload: message.payload,
    correlationId: message.correlationId,
    causationId: message.causationId,
    attempt,
    coordinates: { destination, partition, offset, lane: String(partition) }
  }, () => record.storedAt)
}

const delayMillis = (options: Broker.NackOptions | undefined): number =>
  options?.delay === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(options.delay))

/** A claimed record as a delivery: settle-once (`Settlement`), its nack delay measured on `Clock`. */
const toDelivery = (topic: State.TopicState, claim: State.Claim): Broker.RawDelivery => {
  const { ack, nack } = Settlement.make(topic.name, {
    ack: Effect.sync(() => State.settle(claim, undefined)),
    nack: (options) => Effect.map(Clock.currentTimeMillis, (now) => State.settle(claim, now + delayMillis(options)))
  })
  return { envelope: toEnvelope(topic.name, claim.partition, claim.record, claim.attempt), ack, nack }
}

/** Waits for a wake-up of the member, or until the next redelivery is due. */
const waitFor = (signal: Deferred.Deferred<void>, nextDue: number | undefined, now: number): Effect.Effect<void> =>
  nextDue === undefined ? Deferred.await(signal) : Effect.raceFirst(Deferred.await(signal), Effect.sleep(nextDue - now))

type Batch = readonly [Broker.RawDelivery, ...Array<Broker.RawDelivery>]

/**
 * A member's pull: what is ready now, else a wait for a wake-up (publish, settlement, rebalance) or the
 * next due redelivery, then another look. Ends (`Cause.Done`) when the member is closed.
 */
const pullOf = (topic: State.TopicState, group: State.GroupState, member: State.Member): Effect.Effect<Batch, Cause.Done> => {
  const pull: Effect.Effect<Batch, Cause.Done> = Effect.suspend(() => {
    if (member.closed) return Cause.done()
    // Armed before looking at the state, so that no wake-up is missed.
    const signal = member.arm()
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const { batch, nextDue } = State.collect(topic, group, member, now)
      return Arr.isReadonlyArrayNonEmpty(batch)
        ? Effect.succeed(Arr.map(batch, (claim) => toDelivery(topic, claim)))
        : Effect.andThen(waitFor(signal, nextDue, now), pull)
    })
  })
  return pull
}

/** The group of a topic, created (at `startFrom`) on its first subscription. */
const groupOf = (topic: State.TopicState, name: string, startFrom: Broker.StartFrom): State.GroupState => {
  const existing = topic.groups.get(name)
  if (existing !== undefined) return existing
  const group = new State.GroupState(
    topic.partitions.map((log) => new State.GroupPartition(startFrom === "earliest" ? log.base : log.end))
  )
  topic.groups.set(name, group)
  return group
}

/** Joins a member to its group for the life of the scope; on close what it held comes back to the group. */
const join = (group: State.GroupState, member: State.Member) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      group.members.push(member)
      State.rebalance(group)
    }),
    () =>
      Effect.sync(() => {
        member.closed = true
        member.wake()
        State.reclaim(group, member)
        group.members.splice(group.members.indexOf(member), 1)
        State.rebalance(group)
      })
  )

/** The broker's state: topics by name, and how many messages each destination ever got. */
class Topics {
  readonly topics = new Map<string, State.TopicState>()
  readonly publishedTotals = new Map<string, number>()
  constructor(readonly partitionCount: number) {}
  get(name: string): State.TopicState {
    const existing = this.topics.get(name)
    if (existing !== undefined) return existing
    const topic = new State.TopicState(name, this.partitionCount)
    this.topics.set(name, topic)
    return topic
  }
  envelopes(destination: string): ReadonlyArray<Envelope> {
    const topic = this.topics.get(destination)
    if (topic === undefined) return []
    return topic.partitions.flatMap((log, partition) => log.retained().map((record) => toEnvelope(destination, partition, record, 1)))
  }
}

/** Appends messages to their partitions (by key hash, else round robin) and wakes the groups' owners. */
const append = (
  state: Topics,
  limits: Parameters<typeof State.applyRetention>[3],
  destination: string,
  messages: ReadonlyArray<OutgoingMessage>,
  now: number
): Array<PublishReceipt> => {
  const topic = state.get(destination)
  const receipts = messages.map((message): PublishReceipt => {
    const partition = message.key === undefined ? topic.roundRobin++ % state.partitionCount : keyHash(message.key) % state.partitionCount
    const log = topic.partitions[partition]!
    const offset = log.end
    log.records.push({ offset, message, storedAt: now })
    State.applyRetention(topic, partition, now, limits)
    for (const group of topic.groups.values()) group.partitions[partition]!.owner?.wake()
    return { id: message.id, coordinates: { destination, partition, offset: String(offset), lane: String(partition) } }
  })
  state.publishedTotals.set(destination, (state.publishedTotals.get(destination) ?? 0) + messages.length)
  return receipts
}

/** An operator's read of a destination: a snapshot of what it retains, outside any group. */
const browse = Effect.fn("MemoryBroker.browse")(function*(topic: State.TopicState, options: Broker.BrowseOptions) {
  const snapshot = topic.partitions.flatMap((log, partition) => log.retained().map((record) => ({ partition, record })))
  const permits = yield* Semaphore.make(Math.max(1, options.prefetch))
  const release = Effect.asVoid(permits.release(1))
  const delivery = (partition: number, record: State.StoredRecord): Broker.RawDelivery => {
    const { ack, nack } = Settlement.make(topic.name, {
      ack: Effect.andThen(Effect.sync(() => State.removeRecord(topic, partition, record.offset)), release),
      nack: () => release
    })
    return { envelope: toEnvelope(topic.name, partition, record, 1), ack, nack }
  }
  return {
    retained: snapshot.length,
    deliveries: Stream.mapEffect(
      Stream.fromIterable(snapshot),
      ({ partition, record }) => Effect.as(permits.take(1), delivery(partition, record))
    )
  } satisfies Broker.Browse
})

/** A member's subscription to a destination, in the current scope. */
const subscribe = Effect.fn("MemoryBroker.subscribe")(function*(topic: State.TopicState, options: Broker.SubscribeOptions) {
  const group = groupOf(topic, options.group, options.startFrom)
  const member = new State.Member(Math.max(1, options.prefetch))
  yield* join(group, member)
  const stopIntake = Effect.sync(() => {
    if (member.closed || member.intakeStopped) return
    member.intakeStopped = true
    State.handOver(group, member)
  })
  return { deliveries: Stream.fromPull(Effect.succeed(pullOf(topic, group, member))), stopIntake } satisfies Broker.Subscription
})

/** The inspection service over the broker's state. */
const inspection = (state: Topics): MemoryBrokerShape => ({
  published: (destination) => Effect.sync(() => state.envelopes(destination)),
  publishedCount: (destination) => Effect.sync(() => state.publishedTotals.get(destination) ?? 0),
  deadLetters: (destination) => Effect.sync(() => state.envelopes(`${destination}.dlq`)),
  committedOffsets: (destination, group) =>
    Effect.sync(() => state.topics.get(destination)?.groups.get(group)?.partitions.map((gp) => gp.committed) ?? []),
  lag: (destination, group) => Effect.sync(() => State.lagOf(state.topics.get(destination), group)),
  inFlight: (destination, group) =>
    Effect.sync(() =>
      state.topics.get(destination)?.groups.get(group)?.partitions.reduce((sum, gp) => sum + gp.inFlight.size, 0) ?? 0
    )
})

/**
 * Builds the broker and its inspection service.
 *
 * @example
 * ```ts
 * import { MemoryBroker } from "@switchyard/core"
 * const { broker, inspect } = MemoryBroker.make({ partitions: 2 })
 * const count = inspect.publishedCount("orders") // Effect<number>
 * console.log(broker.system) // "memory"
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options = {}): { readonly broker: Broker.BrokerShape; readonly inspect: MemoryBrokerShape } => {
  const state = new Topics(options.partitions ?? 4)
  const limits = {
    maxRecords: options.maxMessagesPerPartition,
    maxAgeMillis: options.maxAge === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(options.maxAge))
  }
  const broker: Broker.BrokerShape = {
    system: "memory",
    capabilities,
    publish: (destination, messages) =>
      Effect.map(Clock.currentTimeMillis, (now) => append(state, limits, destination, messages, now)),
    subscribe: (destination, subscribeOptions) => subscribe(state.get(destination), subscribeOptions),
    browse: (destination, browseOptions) => browse(state.get(destination), browseOptions),
    lag: (destination, group) => Effect.sync(() => State.lagOf(state.topics.get(destination), group)),
    serverInfo: Effect.sync(() => ({
      product: "Switchyard in-memory broker",
      version: "unknown",
      details: { partitions: String(state.partitionCount), destinations: String(state.topics.size) }
    }))
  }
  return { broker, inspect: inspection(state) }
}

/**
 * The in-memory broker as a Layer providing `Broker` and the `MemoryBroker` inspection service.
 * Every call builds a fresh, empty broker.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const program = Publisher.publish(orders, { id: "o-1" }).pipe(
 *   Effect.provide(Switchyard.layer.pipe(Layer.provideMerge(MemoryBroker.layer())))
 * )
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Broker.Broker | MemoryBroker> => layerWrapped(identity, options)

/**
 * The in-memory broker with its `Broker` service wrapped: fault injection and recording for tests (a failing
 * dead-letter publish, a subscription that drops, publish calls counted). The inspection service sees the
 * real broker underneath.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Errors, MemoryBroker } from "@switchyard/core"
 * const noDeadLetters = MemoryBroker.layerWrapped((broker) => ({
 *   ...broker,
 *   publish: (destination, messages) =>
 *     destination.endsWith(".dlq")
 *       ? Effect.fail(new Errors.PublishError({ destination, reason: Errors.reason("Unreachable", "down") }))
 *       : broker.publish(destination, messages)
 * }))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerWrapped = (
  wrap: (broker: Broker.BrokerShape, inspect: MemoryBrokerShape) => Broker.BrokerShape,
  options: Options = {}
): Layer.Layer<Broker.Broker | MemoryBroker> =>
  Layer.effectContext(
    Effect.sync(() => {
      const { broker, inspect } = make(options)
      return Context.make(Broker.Broker, wrap(broker, inspect)).pipe(Context.add(MemoryBroker, inspect))
    })
  )
