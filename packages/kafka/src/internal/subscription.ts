/**
 * The consumer runloop behind `Broker.subscribe` for Kafka.
 *
 * - kafkajs `eachBatch` only copies records into the subscription's queue (no Effect is run per record) and
 *   resolves their offsets as *fetched*; it never blocks, so heartbeats and rebalances keep flowing.
 * - Backpressure: each partition hands out at most `prefetch` unsettled deliveries; the rest of the fetched
 *   batch is held (so memory is bounded by `prefetch` + one fetch of `maxBytesPerPartition` per partition),
 *   the partition is PAUSED, and acks move held records into the stream; fetching resumes once the hold
 *   is empty (the next fetch is then held while the stream works through the bound, keeping the pipeline
 *   full without growing memory).
 * - Commits: acks are tracked per partition; the committed offset is the end of the CONTIGUOUS PREFIX of
 *   acknowledged offsets, so out-of-order acks under concurrency never commit past unfinished work. The
 *   offsets acked above it travel in the commit's metadata (`offsets.ts`), and whoever owns the partition
 *   next skips them: nothing acked is handled twice after a rebalance, restart or SIGTERM, while what was
 *   delivered but not acked (buffered, in flight, nacked) comes back at once. A commit fiber flushes every
 *   `commitInterval`, or sooner once `commitEvery` acks are pending, when a rebalance starts, and on
 *   shutdown.
 * - Rebalance: when the group starts rebalancing the pending prefix is committed at once; when the new
 *   assignment arrives, revoked partitions stop delivering (buffered deliveries are dropped, their acks
 *   fail with `AckError` and the new owner gets them from the committed offset). Retained partitions keep
 *   their tracker, and records fetched again from the committed offset are not delivered twice.
 * - `nack` = redeliver: the same record is queued again to this member (attempt + 1), after `delay` if
 *   given; the partition's commit point cannot pass it until it is acked, so if this member stops or loses
 *   the partition first, the next owner gets it from the broker.
 * - Shutdown: pause everything; while a reader is still consuming the stream, wait (up to `drainTimeout`)
 *   for deliveries it has taken to settle; then commit, leave the group, disconnect.
 *
 * @internal
 */
import { Cause, Clock, Duration, Effect, Fiber, Latch, Metric, Queue, Schedule, type Scope, Stream } from "effect"
import { Errors } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import type { EachBatchPayload, KafkaMessage, TopicPartitionOffsetAndMetadata } from "kafkajs"
import type { KafkaAdmin } from "../KafkaAdmin.ts"
import type { KafkaClient } from "../KafkaClient.ts"
import { makeAssigner } from "./assigner.ts"
import { fromRecord } from "./codec.ts"
import { subscribeError } from "./errors.ts"
import { decodeAcked, encodeAcked } from "./offsets.ts"

interface Entry {
  readonly offset: number
  acked: boolean
}

/** Per-partition state of one member: ack tracking, bound and pause flag. */
export class PartitionState {
  entries: Array<Entry> = []
  head = 0
  /** Delivered (queued) and not yet acked. */
  outstanding = 0
  /** Taken by the stream and not yet settled (for the shutdown drain). */
  inFlight = 0
  /** The end of the contiguous acked prefix: the offset to commit (set by the first ack that moves it). */
  commitPos: number | undefined = undefined
  /** The first offset this member delivered from the partition. */
  firstOffset: number | undefined = undefined
  /** What the broker has committed for us. */
  committed: number | undefined = undefined
  /** Highest delivered offset + 1 (records fetched again below it are not delivered twice). */
  nextOffset: number | undefined = undefined
  /** Fetched records beyond the bound, delivered as acks free room (at most one fetch batch). */
  overflow: Array<KafkaMessage> = []
  overflowHead = 0
  paused = false
  revoked = false
  /** The partition's high watermark as of the last fetch (for lag). */
  highWatermark: number | undefined = undefined
  /** Offsets a previous owner acked above its commit (from the commit metadata): skipped, counted as acked. */
  inherited: ReadonlySet<number> = new Set()
  /** Resolves once `inherited` is known (one offset fetch after the assignment). */
  inheritedReady: Promise<void> | undefined = undefined
  /** Bumped by every ack; commits are sent only when it moved since the last one. */
  version = 0
  committedVersion = 0
  constructor(readonly partition: number) {}

  /** The offset to commit: the end of the acked prefix, else the first delivered offset once anything is acked. */
  commitOffset(): number | undefined {
    if (this.commitPos !== undefined) return this.commitPos
    return this.version > 0 ? this.entries[this.head]?.offset : undefined
  }

  /** The commit's metadata: what is acked above the commit offset (and inherited offsets not fetched yet). */
  commitMetadata(base: number): string {
    const entries = this.entries
    const head = this.head
    const next = this.nextOffset ?? base
    const inherited = this.inherited
    function* acked(): Generator<number> {
      for (let i = head; i < entries.length; i++) if (entries[i]!.acked) yield entries[i]!.offset
      // (decoded in ascending order, and a Set iterates in insertion order)
      for (const offset of inherited) if (offset >= next) yield offset
    }
    return encodeAcked(base, acked())
  }

  /** Records between what is committed-or-acked and the end of the partition. */
  lag(): number | undefined {
    if (this.highWatermark === undefined) return undefined
    const position = this.commitPos ?? this.committed ?? this.firstOffset
    return position === undefined ? undefined : Math.max(0, this.highWatermark - position)
  }

  push(offset: number): Entry {
    const entry: Entry = { offset, acked: false }
    if (this.firstOffset === undefined) this.firstOffset = offset
    this.entries.push(entry)
    this.outstanding++
    this.nextOffset = offset + 1
    return entry
  }

  /** Marks an entry acked; returns true when the commit point moved. */
  ack(entry: Entry): boolean {
    entry.acked = true
    this.outstanding--
    this.version++
    let moved = false
    const entries = this.entries
    while (this.head < entries.length && entries[this.head]!.acked) {
      this.commitPos = entries[this.head]!.offset + 1
      this.head++
      moved = true
    }
    if (this.head > 4096 && this.head * 2 > entries.length) {
      this.entries = entries.slice(this.head)
      this.head = 0
    }
    return moved
  }
}

/** Options the subscription needs. */
export interface SubscriptionOptions {
  readonly client: KafkaClient["Service"]
  /** Reads the group's committed offsets and their metadata when partitions are assigned. */
  readonly admin: KafkaAdmin["Service"]
  readonly destination: string
  readonly options: Broker.SubscribeOptions
  /** Route deliveries to one queue per partition (see `partitions`) instead of the single stream. */
  readonly partitioned?: boolean | undefined
}

/** A partition's own stream of deliveries; it ends when the partition is revoked. */
export interface PartitionStream {
  readonly partition: number
  readonly deliveries: Stream.Stream<Broker.RawDelivery, Errors.SubscribeError>
}

/** An assignment change seen by this member. */
export type RebalanceEvent =
  | { readonly _tag: "Assigned"; readonly partitions: ReadonlyArray<number> }
  | { readonly _tag: "Revoked"; readonly partitions: ReadonlyArray<number> }

/** Consumer lag per partition (high watermark minus the acknowledged position), updated on every commit. */
export const lagGauge = Metric.gauge("switchyard_kafka_consumer_lag", {
  description: "Records between the acknowledged position and the partition's high watermark"
})

/** A running subscription: the contract's stream plus the native extras. */
export interface RunningSubscription extends Broker.Subscription {
  /** Commits the acknowledged prefix of every partition now. */
  readonly commit: Effect.Effect<void>
  /** With `partitioned: true`: one stream per assigned partition, ending on revoke. */
  readonly partitions: Stream.Stream<PartitionStream, Errors.SubscribeError>
  /** Assignment changes of this member (single reader). */
  readonly rebalances: Stream.Stream<RebalanceEvent, Errors.SubscribeError>
  /** Current lag per assigned partition. */
  readonly lag: Effect.Effect<ReadonlyMap<number, number>>
}

/** @internal */
export const subscribe = (
  opts: SubscriptionOptions
): Effect.Effect<RunningSubscription, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const { admin, client, destination, options } = opts
    const settings = client.settings
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const prefetch = Math.max(1, options.prefetch)
    const scope = yield* Effect.scope
    const queue = yield* Queue.unbounded<Delivery, Errors.SubscribeError | Cause.Done>()
    const partitioned = opts.partitioned === true
    const partitionStreams = yield* Queue.unbounded<PartitionStream, Errors.SubscribeError | Cause.Done>()
    const partitionQueues = new Map<number, Queue.Queue<Delivery, Errors.SubscribeError | Cause.Done>>()
    const rebalanceEvents = yield* Queue.unbounded<RebalanceEvent, Errors.SubscribeError | Cause.Done>()
    const states = new Map<number, PartitionState>()
    const wake = Latch.makeUnsafe(false)
    let pendingAcks = 0
    let closing = false
    /** Streams currently reading `deliveries`; once none is, nobody can settle what is in flight. */
    let readers = 0

    const consumer = client.kafka.consumer({
      groupId: options.group,
      sessionTimeout: settings.sessionTimeout,
      heartbeatInterval: settings.heartbeatInterval,
      rebalanceTimeout: settings.rebalanceTimeout,
      maxWaitTimeInMs: settings.maxWaitTime,
      maxBytesPerPartition: settings.maxBytesPerPartition,
      metadataMaxAge: settings.metadataMaxAge,
      allowAutoTopicCreation: false,
      partitionAssigners: [makeAssigner(() => ({ [destination]: [...states.keys()] }))]
    })
    const topicPartitions = (partition: number) => [{ topic: destination, partitions: [partition] }]

    const target = (state: PartitionState) => (partitioned ? partitionQueues.get(state.partition) ?? queue : queue)

    const liveOnly = (d: Delivery) => {
      if (d.state.revoked || d.settled) return false
      d.taken = true
      d.state.inFlight++
      return true
    }

    const newState = (partition: number): PartitionState => {
      const state = new PartitionState(partition)
      states.set(partition, state)
      if (partitioned) {
        const own = Effect.runSync(Queue.unbounded<Delivery, Errors.SubscribeError | Cause.Done>())
        partitionQueues.set(partition, own)
        Queue.offerUnsafe(partitionStreams, { partition, deliveries: Stream.fromQueue(own).pipe(Stream.filter(liveOnly)) })
      }
      return state
    }

    const enqueue = (state: PartitionState, message: KafkaMessage) => {
      const offset = Number(message.offset)
      const entry = state.push(offset)
      // acked by the partition's previous owner: count it as acked here too, without handling it again
      if (state.inherited.has(offset)) {
        state.ack(entry)
        return
      }
      Queue.offerUnsafe(target(state), new Delivery(state, entry, fromRecord(destination, state.partition, message, 1, now)))
    }

    /** Moves held records into the stream as room frees up; resumes fetching once the hold is empty. */
    const refill = (state: PartitionState) => {
      if (state.revoked) return
      const overflow = state.overflow
      while (state.overflowHead < overflow.length && state.outstanding < prefetch) {
        enqueue(state, overflow[state.overflowHead++]!)
      }
      if (state.overflowHead >= overflow.length) {
        if (overflow.length > 0) {
          state.overflow = []
          state.overflowHead = 0
        }
        if (state.paused && !closing) {
          state.paused = false
          try {
            consumer.resume(topicPartitions(state.partition))
          } catch {
            // the consumer is restarting; its next assignment starts unpaused
          }
        }
      }
    }

    class Delivery implements Broker.RawDelivery {
      settled = false
      taken = false
      constructor(
        readonly state: PartitionState,
        readonly entry: Entry,
        readonly envelope: ReturnType<typeof fromRecord>
      ) {}
      readonly ack: Effect.Effect<void, Errors.AckError> = Effect.suspend(() => this.settle(true, undefined))
      // a property, not a method: callers copy it off the delivery (core's typed `Delivery` does)
      readonly nack = (nackOptions?: Broker.NackOptions): Effect.Effect<void, Errors.AckError> =>
        Effect.suspend(() => this.settle(false, nackOptions?.delay))
      settle(ok: boolean, delay: Duration.Input | undefined): Effect.Effect<void, Errors.AckError> {
        if (this.settled) return Effect.void
        this.settled = true
        const state = this.state
        if (this.taken) state.inFlight--
        if (state.revoked) {
          return Effect.fail(
            new Errors.AckError({
              destination,
              reason: `partition ${state.partition} was revoked; the record is redelivered to its new owner`,
              kind: "BrokerClosed"
            })
          )
        }
        if (ok) {
          if (state.ack(this.entry) && ++pendingAcks >= settings.commitEvery) wake.openUnsafe()
          refill(state)
          return Effect.void
        }
        const again = new Delivery(state, this.entry, { ...this.envelope, attempt: this.envelope.attempt + 1 })
        if (delay === undefined || Duration.isZero(Duration.fromInputUnsafe(delay))) {
          Queue.offerUnsafe(target(state), again)
          return Effect.void
        }
        return Effect.sleep(delay).pipe(
          Effect.andThen(Effect.sync(() => {
            if (!state.revoked) Queue.offerUnsafe(target(state), again)
          })),
          Effect.forkIn(scope),
          Effect.asVoid
        )
      }
    }

    const eachBatch = async (payload: EachBatchPayload): Promise<void> => {
      const { batch, resolveOffset, isRunning, isStale } = payload
      const partition = batch.partition
      let state = states.get(partition)
      // (a revoked state is removed from `states` when it is revoked)
      if (state === undefined) state = newState(partition)
      if (state.inheritedReady !== undefined) await state.inheritedReady
      state.highWatermark = Number(batch.highWatermark)
      let last: string | undefined
      for (const message of batch.messages) {
        if (closing || !isRunning() || isStale()) break
        last = message.offset
        const offset = Number(message.offset)
        if (state.nextOffset !== undefined && offset < state.nextOffset) continue
        if (state.outstanding < prefetch && state.overflowHead >= state.overflow.length) {
          enqueue(state, message)
        } else {
          state.overflow.push(message)
          state.nextOffset = offset + 1
        }
      }
      if (last !== undefined) resolveOffset(last)
      if (state.overflowHead < state.overflow.length && !state.paused) {
        state.paused = true
        consumer.pause(topicPartitions(partition))
      }
    }

    const commitNow: Effect.Effect<void> = Effect.suspend(() => {
      pendingAcks = 0
      const offsets: Array<TopicPartitionOffsetAndMetadata> = []
      const committing: Array<[PartitionState, number]> = []
      const versions: Array<number> = []
      for (const state of states.values()) {
        if (state.revoked || state.version === state.committedVersion) continue
        const pos = state.commitOffset()
        if (pos === undefined) continue
        offsets.push({ topic: destination, partition: state.partition, offset: String(pos), metadata: state.commitMetadata(pos) })
        committing.push([state, pos])
        versions.push(state.version)
      }
      if (offsets.length === 0) return Effect.void
      return Effect.tryPromise(() => consumer.commitOffsets(offsets)).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            committing.forEach(([state, pos], i) => {
              if (state.committed === undefined || pos > state.committed) state.committed = pos
              if (versions[i]! > state.committedVersion) state.committedVersion = versions[i]!
            })
          })
        ),
        Effect.andThen(Effect.forEach(committing, ([state]) => {
          const lag = state.lag()
          return lag === undefined
            ? Effect.void
            : Metric.update(
              Metric.withAttributes(lagGauge, { topic: destination, group: options.group, partition: String(state.partition) }),
              lag
            )
        }, { discard: true })),
        Effect.catch((e) => Effect.logDebug("kafka commit failed; retried with the next one", String(e)))
      )
    })

    const commitLoop = Effect.gen(function*() {
      while (true) {
        yield* wake.await.pipe(Effect.timeoutOrElse({ duration: settings.commitInterval, orElse: () => Effect.void }))
        wake.closeUnsafe()
        yield* commitNow
      }
    })

    /** Reads what previous owners acked above their commits, before the new partitions' first batch. */
    const inherit = (added: ReadonlyArray<PartitionState>) => {
      const ready = admin.admin.fetchOffsets({ groupId: options.group, topics: [destination] }).then(
        (result) => {
          const committed = new Map((result[0]?.partitions ?? []).map((p) => [p.partition, p] as const))
          for (const state of added) {
            const entry = committed.get(state.partition)
            const base = entry === undefined ? -1 : Number(entry.offset)
            if (base >= 0) state.inherited = decodeAcked(base, entry?.metadata)
            state.inheritedReady = undefined
          }
        },
        () => {
          // without it, records acked by the previous owner above its commit are handled again (at-least-once)
          for (const state of added) state.inheritedReady = undefined
        }
      )
      for (const state of added) state.inheritedReady = ready
    }

    // readiness: the first assignment, then (for assigned partitions) one completed fetch, so start offsets
    // ("latest") are resolved before subscribe returns.
    const joined = Latch.makeUnsafe(false)
    let joinedOnce = false
    const listeners: Array<() => void> = []
    listeners.push(consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assigned = new Set(event.payload.memberAssignment[destination] ?? [])
      const revoked: Array<number> = []
      for (const [partition, state] of states) {
        if (!assigned.has(partition)) {
          state.revoked = true
          states.delete(partition)
          revoked.push(partition)
          const own = partitionQueues.get(partition)
          if (own !== undefined) {
            partitionQueues.delete(partition)
            Queue.endUnsafe(own)
          }
        } else if (state.paused) {
          // a new generation starts unpaused in kafkajs; keep our bound
          try {
            consumer.pause(topicPartitions(partition))
          } catch {
            // ignored: not running yet
          }
        }
      }
      const added: Array<PartitionState> = []
      for (const partition of assigned) {
        if (!states.has(partition)) added.push(newState(partition))
      }
      if (added.length > 0) inherit(added)
      if (revoked.length > 0) {
        Queue.offerUnsafe(rebalanceEvents, { _tag: "Revoked", partitions: revoked })
      }
      Queue.offerUnsafe(rebalanceEvents, { _tag: "Assigned", partitions: [...assigned].sort((a, b) => a - b) })
      if (assigned.size === 0) joined.openUnsafe()
      joinedOnce = true
    }))
    listeners.push(consumer.on(consumer.events.FETCH, () => {
      if (joinedOnce) joined.openUnsafe()
    }))
    listeners.push(consumer.on(consumer.events.REBALANCING, () => {
      // best effort: wake the commit fiber so the acknowledged prefix is committed while this generation is
      // still valid (the generation changes only once every member has rejoined)
      wake.openUnsafe()
    }))
    const crashes = yield* Queue.unbounded<{ readonly error: unknown; readonly restart: boolean }>()
    listeners.push(consumer.on(consumer.events.CRASH, (event) => {
      Queue.offerUnsafe(crashes, { error: event.payload.error, restart: event.payload.restart })
    }))
    const failAll = (error: unknown) => {
      const cause = Cause.fail(subscribeError(destination, error, "consumer crashed"))
      Queue.failCauseUnsafe(queue, cause)
      Queue.failCauseUnsafe(partitionStreams, cause)
      Queue.failCauseUnsafe(rebalanceEvents, cause)
      for (const own of partitionQueues.values()) Queue.failCauseUnsafe(own, cause)
      joined.openUnsafe()
    }
    const run = Effect.tryPromise({
      try: () => consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch }),
      catch: (cause) => subscribeError(destination, cause, "consumer start failed")
    })
    // kafkajs restarts itself after retriable crashes; after any other crash we restart it per a Schedule,
    // and fail the streams only when that keeps failing (liveness: never leave a stream hanging).
    const supervisor = Effect.gen(function*() {
      while (true) {
        const crash = yield* Queue.take(crashes)
        const text = `kafka consumer of ${destination} (group ${options.group}) crashed`
        if (crash.restart || closing) {
          // kafkajs restarts it by itself
          yield* Effect.logDebug(text, String(crash.error))
          continue
        }
        yield* Effect.logWarning(`${text}; restarting it`, String(crash.error))
        const restarted = yield* Effect.tryPromise({
          try: async () => {
            await consumer.disconnect().catch(() => undefined)
            await consumer.connect()
          },
          catch: (cause) => subscribeError(destination, cause, "consumer reconnect failed")
        }).pipe(
          Effect.andThen(run),
          Effect.retry(Schedule.exponential("500 millis").pipe(Schedule.upTo({ times: 10 }))),
          Effect.result
        )
        if (restarted._tag === "Failure") {
          failAll(restarted.failure)
          return
        }
      }
    })

    const shutdown = Effect.gen(function*() {
      closing = true
      for (const state of states.values()) {
        try {
          consumer.pause(topicPartitions(state.partition))
        } catch {
          // not running
        }
      }
      const inFlight = () => {
        let n = 0
        for (const state of states.values()) n += state.inFlight
        return n
      }
      yield* Effect.sync(() => readers === 0 || inFlight() === 0).pipe(
        Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (done) => done }),
        Effect.timeoutOrElse({ duration: settings.drainTimeout, orElse: () => Effect.void })
      )
      yield* commitNow
      yield* Effect.promise(() => consumer.disconnect().catch(() => undefined))
      for (const remove of listeners) remove()
      yield* Queue.end(queue)
      yield* Queue.end(partitionStreams)
      yield* Queue.end(rebalanceEvents)
      for (const own of partitionQueues.values()) Queue.endUnsafe(own)
    })

    yield* Effect.addFinalizer(() => shutdown)

    const supervisorFiber = yield* Effect.forkIn(supervisor, scope)
    yield* Effect.addFinalizer(() => Fiber.interrupt(supervisorFiber))
    yield* Effect.tryPromise({
      try: async () => {
        await consumer.connect()
        await consumer.subscribe({ topics: [destination], fromBeginning: options.startFrom === "earliest" })
      },
      catch: (cause) => subscribeError(destination, cause, "consumer start failed")
    })
    yield* run
    yield* joined.await.pipe(
      Effect.timeoutOrElse({
        duration: Duration.max(Duration.seconds(30), Duration.millis(settings.rebalanceTimeout)),
        orElse: () =>
          Effect.fail(
            new Errors.SubscribeError({ destination, reason: "no partition assignment within the timeout", kind: "Timeout" })
          )
      })
    )
    const commitFiber = yield* Effect.forkIn(commitLoop, scope)
    yield* Effect.addFinalizer(() => Fiber.interrupt(commitFiber))

    const live: Stream.Stream<Broker.RawDelivery, Errors.SubscribeError> = Stream.fromQueue(queue).pipe(
      Stream.filter(liveOnly)
    )
    const deliveries = Stream.suspend(() => {
      readers++
      return live.pipe(Stream.ensuring(Effect.sync(() => readers--)))
    })
    const partitions = Stream.suspend(() => {
      readers++
      return Stream.fromQueue(partitionStreams).pipe(Stream.ensuring(Effect.sync(() => readers--)))
    })
    const lag = Effect.sync(() => {
      const out = new Map<number, number>()
      for (const state of states.values()) {
        const value = state.lag()
        if (value !== undefined) out.set(state.partition, value)
      }
      return out
    })
    return {
      deliveries,
      commit: commitNow,
      partitions,
      rebalances: Stream.fromQueue(rebalanceEvents),
      lag
    }
  })
