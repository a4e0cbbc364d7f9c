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
import { Clock, Context, Deferred, Duration, Effect, Exit, identity, Layer, Semaphore, Stream } from "effect"
import * as Cause from "effect/Cause"
import * as IncomingEnvelope from "./adapter/IncomingEnvelope.ts"
import * as Broker from "./Broker.ts"
import type { Capabilities } from "./Capabilities.ts"
import * as Caps from "./Capabilities.ts"
import type { Envelope, OutgoingMessage, PublishReceipt } from "./Envelope.ts"
import { keyHash } from "./internal/hash.ts"

/**
 * Options of the in-memory broker.
 *
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

interface StoredRecord {
  readonly offset: number
  readonly message: OutgoingMessage
  readonly storedAt: number
}

class PartitionLog {
  records: Array<StoredRecord> = []
  /** Offset of `records[0]`. */
  base = 0
  /**
   * Offsets removed by an operator's read (`Broker.browse`, then `ack`): gone for every reader. The log keeps
   * its offsets (a removed record is a tombstone until retention drops it), so groups skip it as acknowledged.
   */
  readonly removed = new Set<number>()
  get end(): number {
    return this.base + this.records.length
  }
  get(offset: number): StoredRecord | undefined {
    return this.removed.has(offset) ? undefined : this.records[offset - this.base]
  }
  /** The records still retained (not removed), in offset order. */
  retained(): Array<StoredRecord> {
    return this.removed.size === 0 ? this.records : this.records.filter((record) => !this.removed.has(record.offset))
  }
}

class TopicState {
  readonly partitions: Array<PartitionLog>
  readonly groups = new Map<string, GroupState>()
  roundRobin = 0
  constructor(readonly name: string, partitionCount: number) {
    this.partitions = Array.from({ length: partitionCount }, () => new PartitionLog())
  }
}

interface Redelivery {
  readonly offset: number
  readonly at: number
}

class GroupPartition {
  /**
   * All offsets below `committed` are acknowledged. Never below the log's `base`: retention raises it.
   */
  committed: number
  /**
   * Next offset never delivered in this generation. It can fall behind `committed` (a rebalance resets it to
   * `committed`, then acks kept from an earlier generation let `committed` jump ahead): `collect` raises it.
   */
  next: number
  /** Bumped on every reassignment; settlements of older generations are ignored. */
  generation = 0
  owner: Member | undefined = undefined
  readonly acked = new Set<number>()
  /**
   * Unsettled deliveries by offset. The claim identifies the delivery, so a stale settlement is ignored, and
   * names the member holding it (after a handover it is not the partition's owner).
   */
  readonly inFlight = new Map<number, Claim>()
  redeliveries: Array<Redelivery> = []
  /** Delivery count per offset, for `attempt`. */
  readonly deliveries = new Map<number, number>()
  constructor(start: number) {
    this.committed = start
    this.next = start
  }
}

class GroupState {
  readonly members: Array<Member> = []
  constructor(readonly partitions: Array<GroupPartition>) {}
}

/** One delivery of an offset, held by a member until settled. */
class Claim {
  constructor(readonly member: Member) {}
}

class Member {
  inFlight = 0
  closed = false
  /** Set by `stopIntake`: the member takes nothing more but may still settle what it holds. */
  intakeStopped = false
  signal: Deferred.Deferred<void> = Deferred.makeUnsafe<void>()
  constructor(readonly prefetch: number) {}
  wake(): void {
    Deferred.doneUnsafe(this.signal, Exit.void)
  }
  /** A fresh signal, taken before looking at the state so that no wake-up is missed. */
  arm(): Deferred.Deferred<void> {
    if (Deferred.isDoneUnsafe(this.signal)) this.signal = Deferred.makeUnsafe<void>()
    return this.signal
  }
}

/**
 * Inspection API of the in-memory broker, for tests and demos.
 *
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
 * @since 0.1.0
 */
export class MemoryBroker extends Context.Service<MemoryBroker, MemoryBrokerShape>()("@switchyard/core/MemoryBroker") {}

/**
 * A stored record as delivered, through the adapter kit's fallbacks like on every broker: a record published
 * without an id gets the stable `<destination>/<partition>/<offset>`, one without a usable time its store time.
 */
const toEnvelope = (
  destination: string,
  partition: number,
  record: StoredRecord,
  attempt: number
): Envelope => {
  const message = record.message
  const offset = String(record.offset)
  return IncomingEnvelope.finish({
    id: message.id,
    brokerId: `${destination}/${partition}/${offset}`,
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
 * @since 0.1.0
 */
export const make = (options: Options = {}): { readonly broker: Broker.BrokerShape; readonly inspect: MemoryBrokerShape } => {
  const partitionCount = options.partitions ?? 4
  const maxAgeMillis = options.maxAge === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(options.maxAge))
  const topics = new Map<string, TopicState>()
  const publishedTotals = new Map<string, number>()

  const topicOf = (name: string): TopicState => {
    let topic = topics.get(name)
    if (topic === undefined) {
      topic = new TopicState(name, partitionCount)
      topics.set(name, topic)
    }
    return topic
  }

  const applyRetention = (topic: TopicState, log: PartitionLog, partition: number, now: number) => {
    let drop = 0
    if (options.maxMessagesPerPartition !== undefined) drop = Math.max(0, log.records.length - options.maxMessagesPerPartition)
    if (maxAgeMillis !== undefined) {
      while (drop < log.records.length && now - log.records[drop]!.storedAt > maxAgeMillis) drop++
    }
    if (drop === 0) return
    log.records.splice(0, drop)
    log.base += drop
    for (const offset of log.removed) if (offset < log.base) log.removed.delete(offset)
    for (const group of topic.groups.values()) {
      const gp = group.partitions[partition]!
      if (gp.committed < log.base) gp.committed = log.base
      if (gp.next < log.base) gp.next = log.base
      gp.redeliveries = gp.redeliveries.filter((r) => r.offset >= log.base)
      // Bookkeeping of dropped records is of no use any more (acks below `committed` are never looked at).
      for (const offset of gp.acked) if (offset < log.base) gp.acked.delete(offset)
      for (const offset of gp.deliveries.keys()) if (offset < log.base) gp.deliveries.delete(offset)
    }
  }

  /** Members that take deliveries (not stopped). */
  const activeMembers = (group: GroupState) => group.members.filter((member) => !member.intakeStopped)

  const rebalance = (group: GroupState) => {
    const active = activeMembers(group)
    group.partitions.forEach((gp, index) => {
      const owner = active.length === 0 ? undefined : active[index % active.length]
      if (owner === gp.owner) return
      for (const claim of gp.inFlight.values()) {
        claim.member.inFlight--
        claim.member.wake()
      }
      // The new owner resumes from the committed offset: unacknowledged deliveries are redelivered.
      gp.owner = owner
      gp.generation++
      gp.inFlight.clear()
      gp.redeliveries = []
      // Offsets acked above the committed prefix stay acked: the new owner skips them.
      gp.next = gp.committed
      owner?.wake()
    })
  }

  /**
   * A member stops intake (graceful shutdown): its partitions go to the other active members at once, and what
   * it holds stays settleable by it (no new generation). What it nacks from now on, and what it had not taken,
   * the new owner gets. Without another active member it keeps its partitions but takes nothing more.
   */
  const handOver = (group: GroupState, leaving: Member) => {
    const active = activeMembers(group)
    if (active.length === 0) return
    let next = 0
    for (const gp of group.partitions) {
      if (gp.owner !== leaving) continue
      const owner = active[next++ % active.length]
      if (owner === undefined) continue
      gp.owner = owner
      owner.wake()
    }
  }

  /** What a closing member still holds in partitions it handed over comes back at once. */
  const reclaim = (group: GroupState, closing: Member) => {
    for (const gp of group.partitions) {
      if (gp.owner === closing) continue
      for (const [offset, claim] of gp.inFlight) {
        if (claim.member !== closing) continue
        gp.inFlight.delete(offset)
        closing.inFlight--
        gp.redeliveries.unshift({ offset, at: 0 })
        gp.owner?.wake()
      }
    }
  }

  const settle = (
    group: GroupState,
    partition: number,
    generation: number,
    offset: number,
    claim: Claim,
    nackAt: number | undefined
  ) => {
    const gp = group.partitions[partition]!
    // Only the first settlement of this very delivery counts (not one of an earlier delivery of the offset).
    if (gp.generation !== generation || gp.inFlight.get(offset) !== claim) return
    gp.inFlight.delete(offset)
    claim.member.inFlight--
    claim.member.wake()
    const owner = gp.owner
    if (nackAt === undefined) {
      gp.deliveries.delete(offset)
      // An offset below `committed` (its record was dropped by retention meanwhile) is acknowledged already.
      if (offset >= gp.committed) gp.acked.add(offset)
      // This may move `committed` past `next` (after a rebalance); `collect` then skips ahead.
      while (gp.acked.delete(gp.committed)) gp.committed++
    } else {
      gp.redeliveries.push({ offset, at: nackAt })
      gp.redeliveries.sort((a, b) => a.at - b.at)
    }
    owner?.wake()
  }

  /** A removed record (see `PartitionLog.removed`) counts as acknowledged by every group. */
  const skipRemoved = (gp: GroupPartition, offset: number) => {
    if (offset >= gp.committed) gp.acked.add(offset)
    while (gp.acked.delete(gp.committed)) gp.committed++
  }

  /** Messages of a destination a group has not acknowledged (removed ones excluded). */
  const lagOf = (destination: string, group: string): number => {
    const topic = topics.get(destination)
    if (topic === undefined) return 0
    const state = topic.groups.get(group)
    return topic.partitions.reduce((sum, log, partition) => {
      const gp = state?.partitions[partition]
      const from = gp?.committed ?? log.base
      let pending = 0
      for (let offset = Math.max(from, log.base); offset < log.end; offset++) {
        if (!log.removed.has(offset) && gp?.acked.has(offset) !== true) pending++
      }
      return sum + pending
    }, 0)
  }

  /** Removes a record for every reader (an operator's `ack` of a browsed message). */
  const removeRecord = (topic: TopicState, partition: number, offset: number) => {
    const log = topic.partitions[partition]!
    if (offset < log.base || offset >= log.end || log.removed.has(offset)) return
    log.removed.add(offset)
    for (const group of topic.groups.values()) group.partitions[partition]!.owner?.wake()
  }

  /** An operator's read of a destination: a snapshot of what it retains, outside any group. */
  const browse = (destination: string, browseOptions: Broker.BrowseOptions): Effect.Effect<Broker.Browse> =>
    Effect.gen(function*() {
      const topic = topicOf(destination)
      const snapshot = topic.partitions.flatMap((log, partition) => log.retained().map((record) => ({ partition, record })))
      const permits = yield* Semaphore.make(Math.max(1, browseOptions.prefetch))
      const delivery = (partition: number, record: StoredRecord): Broker.RawDelivery => {
        const state = { settled: false }
        const settleWith = (remove: boolean) =>
          Effect.suspend(() => {
            if (state.settled) return Effect.void
            state.settled = true
            if (remove) removeRecord(topic, partition, record.offset)
            return Effect.asVoid(permits.release(1))
          })
        return {
          envelope: toEnvelope(destination, partition, record, 1),
          ack: settleWith(true),
          nack: () => settleWith(false)
        }
      }
      return {
        retained: snapshot.length,
        deliveries: Stream.fromIterable(snapshot).pipe(
          Stream.mapEffect(({ partition, record }) => Effect.as(permits.take(1), delivery(partition, record)))
        )
      }
    })

  /** Collects what is ready for a member, synchronously; returns the next redelivery time when nothing is. */
  const collect = (
    topic: TopicState,
    group: GroupState,
    member: Member,
    now: number
  ): { readonly batch: Array<Broker.RawDelivery>; readonly nextDue: number | undefined } => {
    const batch: Array<Broker.RawDelivery> = []
    let nextDue: number | undefined
    const deliver = (partition: number, gp: GroupPartition, record: StoredRecord) => {
      const attempt = (gp.deliveries.get(record.offset) ?? 0) + 1
      gp.deliveries.set(record.offset, attempt)
      const claim = new Claim(member)
      gp.inFlight.set(record.offset, claim)
      member.inFlight++
      const generation = gp.generation
      const offset = record.offset
      batch.push({
        envelope: toEnvelope(topic.name, partition, record, attempt),
        ack: Effect.sync(() => settle(group, partition, generation, offset, claim, undefined)),
        nack: (nackOptions) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) =>
            Effect.sync(() =>
              settle(
                group,
                partition,
                generation,
                offset,
                claim,
                at + (nackOptions?.delay === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(nackOptions.delay)))
              )
            ))
      })
    }
    if (member.intakeStopped) return { batch, nextDue }
    group.partitions.forEach((gp, partition) => {
      if (gp.owner !== member) return
      const log = topic.partitions[partition]!
      while (gp.redeliveries.length > 0 && member.inFlight < member.prefetch) {
        const due = gp.redeliveries[0]!
        if (due.at > now) break
        gp.redeliveries.shift()
        const record = log.get(due.offset)
        if (record !== undefined) deliver(partition, gp, record)
        else skipRemoved(gp, due.offset)
      }
      if (gp.redeliveries.length > 0) {
        const at = gp.redeliveries[0]!.at
        if (at > now && (nextDue === undefined || at < nextDue)) nextDue = at
      }
      // Everything below `committed` is acknowledged: never deliver it again. `committed >= log.base` holds
      // (retention raises it), so this also skips records that retention dropped.
      if (gp.next < gp.committed) gp.next = gp.committed
      // Offsets acked above `committed` (kept across a rebalance) are skipped too.
      while (gp.next < log.end && member.inFlight < member.prefetch) {
        const record = log.get(gp.next)
        if (record === undefined) skipRemoved(gp, gp.next)
        else if (!gp.acked.has(gp.next)) deliver(partition, gp, record)
        gp.next++
      }
    })
    return { batch, nextDue }
  }

  const broker: Broker.BrokerShape = {
    system: "memory",
    capabilities,
    publish: (destination, messages) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          const topic = topicOf(destination)
          const receipts: Array<PublishReceipt> = []
          for (const message of messages) {
            const partition = message.key === undefined
              ? topic.roundRobin++ % partitionCount
              : keyHash(message.key) % partitionCount
            const log = topic.partitions[partition]!
            const offset = log.end
            log.records.push({ offset, message, storedAt: now })
            applyRetention(topic, log, partition, now)
            receipts.push({ id: message.id, coordinates: { destination, partition, offset: String(offset), lane: String(partition) } })
            for (const group of topic.groups.values()) group.partitions[partition]!.owner?.wake()
          }
          publishedTotals.set(destination, (publishedTotals.get(destination) ?? 0) + messages.length)
          return receipts
        })),
    subscribe: (destination, subscribeOptions) =>
      Effect.gen(function*() {
        const topic = topicOf(destination)
        let group = topic.groups.get(subscribeOptions.group)
        if (group === undefined) {
          group = new GroupState(
            topic.partitions.map((log) => new GroupPartition(subscribeOptions.startFrom === "earliest" ? log.base : log.end))
          )
          topic.groups.set(subscribeOptions.group, group)
        }
        const joined = group
        const member = new Member(Math.max(1, subscribeOptions.prefetch))
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            joined.members.push(member)
            rebalance(joined)
          }),
          () =>
            Effect.sync(() => {
              member.closed = true
              member.wake()
              reclaim(joined, member)
              joined.members.splice(joined.members.indexOf(member), 1)
              rebalance(joined)
            })
        )
        const stopIntake = Effect.sync(() => {
          if (member.closed || member.intakeStopped) return
          member.intakeStopped = true
          handOver(joined, member)
        })
        const pull: Effect.Effect<readonly [Broker.RawDelivery, ...Array<Broker.RawDelivery>], Cause.Done> = Effect.gen(
          function*() {
            while (true) {
              if (member.closed) return yield* Cause.done()
              const signal = member.arm()
              const now = yield* Clock.currentTimeMillis
              const { batch, nextDue } = collect(topic, joined, member, now)
              const [first, ...rest] = batch
              if (first !== undefined) return [first, ...rest] as const
              yield* nextDue === undefined
                ? Deferred.await(signal)
                : Effect.raceFirst(Deferred.await(signal), Effect.sleep(nextDue - now))
            }
          }
        )
        return { deliveries: Stream.fromPull(Effect.succeed(pull)), stopIntake }
      }),
    browse,
    lag: (destination, group) => Effect.sync(() => lagOf(destination, group)),
    serverInfo: Effect.sync(() => ({
      product: "Switchyard in-memory broker",
      version: "unknown",
      details: { partitions: String(partitionCount), destinations: String(topics.size) }
    }))
  }

  const envelopesOf = (destination: string): ReadonlyArray<Envelope> => {
    const topic = topics.get(destination)
    if (topic === undefined) return []
    return topic.partitions.flatMap((log, partition) => log.retained().map((record) => toEnvelope(destination, partition, record, 1)))
  }

  const inspect: MemoryBrokerShape = {
    published: (destination) => Effect.sync(() => envelopesOf(destination)),
    publishedCount: (destination) => Effect.sync(() => publishedTotals.get(destination) ?? 0),
    deadLetters: (destination) => Effect.sync(() => envelopesOf(`${destination}.dlq`)),
    committedOffsets: (destination, group) =>
      Effect.sync(() => topics.get(destination)?.groups.get(group)?.partitions.map((gp) => gp.committed) ?? []),
    lag: (destination, group) => Effect.sync(() => lagOf(destination, group)),
    inFlight: (destination, group) =>
      Effect.sync(() =>
        topics.get(destination)?.groups.get(group)?.partitions.reduce((sum, gp) => sum + gp.inFlight.size, 0) ?? 0
      )
  }
  return { broker, inspect }
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
 *       ? Effect.fail(new Errors.PublishError({ destination, reason: "down" }))
 *       : broker.publish(destination, messages)
 * }))
 * ```
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
