/**
 * The consumer runloop (in the manner of zio-kafka's Runloop and fs2-kafka's KafkaConsumerActor).
 *
 * Client callbacks (kafkajs: eachBatch, GROUP_JOIN, REBALANCING, FETCH; @platformatic/kafka: the messages
 * stream's data, fetch and the group events) and settlements only ENQUEUE a
 * {@link Command}; ONE fiber folds them, every command enqueued meanwhile in one turn ({@link stepAll}: a
 * partition's acks of the turn update its tracker once, the partitions are pumped once), over an immutable
 * {@link State}: the assigned partitions,
 * each with its offset tracker (`offsetTracker.ts`), its buffer of fetched records not handed out yet, how
 * many it has handed out (at most `prefetch`), and whether kafkajs has it paused (a partition is paused
 * while its buffer holds anything, so memory stays bounded by `prefetch` plus one fetch per partition).
 *
 * - Rebalance: revoked partitions are dropped (their deliveries' settlements fail with `BrokerClosed`; the
 *   new owner gets them from the committed offset); added ones read, before their first record is handed
 *   out, what the previous owner acked above its commit (`offsets.ts`), and skip it; retained ones keep
 *   their tracker, and records fetched again below what was delivered are not delivered twice.
 * - `nack` = redeliver the same record to this member (attempt + 1), after `delay` if given.
 * - Commits run elsewhere (`subscription.ts`, on a `Schedule` and on rebalance) from a snapshot of the state;
 *   the runloop asks for one early once `commitEvery` acks are pending.
 * - Stop: pause everything, drop the buffers, take back what no reader took, and complete `drained` once
 *   nothing handed out is unsettled (or nobody reads any more).
 *
 * The functions are `Effect.fnUntraced`: they run for every fetched batch and every settlement, and a span
 * per command would cost more than the fold itself.
 */
import { type Cause, Clock, Deferred, type Duration, Effect, Option, Queue, type Scope } from "effect"
import type { Broker, Errors } from "@switchyard/core"
import type { DeliveryQueue } from "@switchyard/core/adapter"
import * as Delivery from "./delivery.ts"
import { fromRecord, type RawRecord } from "./envelope.ts"
import { encodeAcked } from "./offsets.ts"
import * as Tracker from "./offsetTracker.ts"

/** A partition's own stream of deliveries; it ends when the partition is revoked. */
export interface PartitionStream {
  readonly partition: number
  readonly deliveries: Broker.Subscription["deliveries"]
}

/** An assignment change seen by this member. */
export type RebalanceEvent =
  | { readonly _tag: "Assigned"; readonly partitions: ReadonlyArray<number> }
  | { readonly _tag: "Revoked"; readonly partitions: ReadonlyArray<number> }

/** What the runloop is told. */
export type Command =
  | { readonly _tag: "Assigned"; readonly partitions: ReadonlyArray<number> }
  | {
    readonly _tag: "Inherited"
    readonly epochs: ReadonlyMap<number, number>
    readonly acked: ReadonlyMap<number, ReadonlySet<number>>
  }
  | {
    readonly _tag: "Fetched"
    readonly partition: number
    readonly messages: ReadonlyArray<RawRecord>
    /** The partition's high watermark, when the client reports it with the batch. */
    readonly highWatermark: number | undefined
    readonly done: () => void
  }
  | { readonly _tag: "FetchCompleted" }
  | { readonly _tag: "Rebalancing" }
  | { readonly _tag: "Crashed"; readonly error: unknown; readonly restart: boolean }
  | {
    readonly _tag: "Settled"
    readonly partition: number
    readonly epoch: number
    readonly pending: Delivery.Pending
    readonly outcome: Delivery.Outcome
  }
  | { readonly _tag: "Redeliver"; readonly partition: number; readonly epoch: number; readonly pending: Delivery.Pending }
  | {
    readonly _tag: "Committed"
    readonly offsets: ReadonlyArray<{ readonly partition: number; readonly epoch: number; readonly offset: number; readonly version: number }>
  }
  | { readonly _tag: "Readers"; readonly delta: number }
  /** Completed once every command before it is folded (read-your-acks for `lag` and `commit`). */
  | { readonly _tag: "Barrier"; readonly done: Deferred.Deferred<void> }
  /** Take nothing more, take back what no reader took; settlements still count (a graceful shutdown begins). */
  | { readonly _tag: "StopIntake" }
  | { readonly _tag: "Stop"; readonly drained: Deferred.Deferred<void> }

/** One assigned partition. */
export interface PartitionState {
  readonly partition: number
  /** Which assignment this is: deliveries of an earlier one are stale. */
  readonly epoch: number
  readonly tracker: Tracker.OffsetTracker
  /** What the previous owner acked above its commit: skipped, counted as acked. */
  readonly inherited: ReadonlySet<number>
  /** False until `inherited` is known: nothing is handed out before. */
  readonly ready: boolean
  /** Fetched (or to be redelivered) and not handed out yet. */
  readonly buffer: ReadonlyArray<Delivery.Pending>
  /** Highest offset fetched into the buffer + 1. */
  readonly fetched: number | undefined
  /** Handed out and not settled. */
  readonly handed: number
  readonly paused: boolean
  readonly highWatermark: number | undefined
  /** What the broker has committed for us. */
  readonly committed: number | undefined
  readonly committedVersion: number
  /** With `partitioned`: the partition's own queue. */
  readonly queue: DeliveryQueue.DeliveryQueue<Delivery.KafkaDelivery> | undefined
}

/** What the runloop pauses and resumes: a kafkajs `Consumer`, or the @platformatic/kafka backend's intake. */
export interface Pausable {
  readonly pause: (topics: Array<{ readonly topic: string; readonly partitions: Array<number> }>) => void
  readonly resume: (topics: Array<{ readonly topic: string; readonly partitions: Array<number> }>) => void
}

/** The runloop's state. */
export interface State {
  readonly partitions: ReadonlyMap<number, PartitionState>
  readonly nextEpoch: number
  readonly joined: boolean
  readonly readers: number
  readonly acksSinceCommit: number
  /** Set by `StopIntake` or `Stop`: nothing more is handed out or fetched. */
  readonly intakeStopped: boolean
  /** Set by `Stop`: completed once nothing handed out is unsettled. */
  readonly draining: Deferred.Deferred<void> | undefined
}

/** The state before the first assignment. */
export const initial: State = {
  partitions: new Map(),
  nextEpoch: 1,
  joined: false,
  readers: 0,
  acksSinceCommit: 0,
  intakeStopped: false,
  draining: undefined
}

/** What the runloop works with. */
export interface Env {
  readonly destination: string
  readonly prefetch: number
  readonly commitEvery: number
  readonly commands: Queue.Queue<Command>
  /** The single stream's queue (without `partitioned`). */
  readonly shared: DeliveryQueue.DeliveryQueue<Delivery.KafkaDelivery>
  /** With `partitioned`: a queue per partition, and the queue of partition streams. */
  readonly partitioned:
    | {
      readonly make: Effect.Effect<DeliveryQueue.DeliveryQueue<Delivery.KafkaDelivery>>
      readonly streams: DeliveryQueue.DeliveryQueue<PartitionStream>
      readonly streamOf: (queue: DeliveryQueue.DeliveryQueue<Delivery.KafkaDelivery>) => PartitionStream["deliveries"]
    }
    | undefined
  readonly rebalances: Queue.Queue<RebalanceEvent, Errors.SubscribeError | Cause.Done>
  /** The consumer that is running now (none while it restarts): only its pause and resume are used. */
  readonly consumer: Effect.Effect<Option.Option<Pausable>>
  /** Reads what previous owners acked above their commits (empty sets on failure). */
  readonly inherit: (partitions: ReadonlyArray<number>) => Effect.Effect<ReadonlyMap<number, ReadonlySet<number>>>
  /** Starts a commit (it reads the state when it runs). */
  readonly commitSoon: Effect.Effect<void>
  readonly joined: Deferred.Deferred<void>
  readonly handlers: Delivery.Handlers
  readonly scope: Scope.Scope
}

const offer = (env: Env, command: Command) => Queue.offer(env.commands, command)

const withPartition = (state: State, p: PartitionState): State => ({
  ...state,
  partitions: new Map(state.partitions).set(p.partition, p)
})

const queueOf = (env: Env, p: PartitionState) => p.queue ?? env.shared

// kafkajs throws from pause/resume while it is not running (restarting): the next assignment starts over
const setPaused = Effect.fnUntraced(function*(env: Env, partition: number, paused: boolean) {
  const consumer = yield* env.consumer
  if (Option.isNone(consumer)) return
  const topics = [{ topic: env.destination, partitions: [partition] }]
  yield* Effect.ignore(Effect.try(() => (paused ? consumer.value.pause(topics) : consumer.value.resume(topics))))
})

/** Hands out one pending record; false when the queue refused it (full). */
const handOut = (env: Env, p: PartitionState, pending: Delivery.Pending, now: () => number): boolean => {
  const envelope = fromRecord(env.destination, p.partition, pending.message, pending.attempt, now)
  return queueOf(env, p).offer(Delivery.make(env.destination, p.partition, p.epoch, pending, envelope, env.handlers))
}

/** Moves buffered records out while the bound allows; pauses while anything stays buffered. */
const pump = Effect.fnUntraced(function*(env: Env, p: PartitionState, closing: boolean) {
  // nothing buffered and the pause as it should be: nothing to do (the common case after a settlement)
  if (p.buffer.length === 0 && p.paused === closing) return p
  const now = yield* Clock.currentTimeMillis
  const clock = () => now
  // the tracker learns the turn's deliveries (and inherited acks) at once: one copy, not one per record
  const delivered: Array<number> = []
  const inheritedAcks: Array<number> = []
  let next = p.tracker.next
  let handed = p.handed
  let i = 0
  const buffer = p.buffer
  for (; p.ready && !closing && i < buffer.length && handed < env.prefetch; i++) {
    const pending = buffer[i]!
    const fresh = next === undefined || pending.offset >= next
    if (fresh) {
      delivered.push(pending.offset)
      next = pending.offset + 1
    }
    // acked by the partition's previous owner: acked here too, without handling it again
    if (fresh && p.inherited.has(pending.offset)) {
      inheritedAcks.push(pending.offset)
      continue
    }
    if (!handOut(env, p, pending, clock)) break
    handed++
  }
  const tracker = Tracker.ackMany(Tracker.deliverMany(p.tracker, delivered), inheritedAcks)
  const rest = i === 0 ? buffer : buffer.slice(i)
  const paused = rest.length > 0 || closing
  if (paused !== p.paused) yield* setPaused(env, p.partition, paused)
  return { ...p, tracker, handed, buffer: rest, paused }
})

const pumpAll = Effect.fnUntraced(function*(env: Env, state: State) {
  let partitions: Map<number, PartitionState> | undefined
  for (const p of state.partitions.values()) {
    const next = yield* pump(env, p, state.intakeStopped)
    if (next === p) continue
    partitions ??= new Map(state.partitions)
    partitions.set(p.partition, next)
  }
  return partitions === undefined ? state : { ...state, partitions }
})

const newPartition = Effect.fnUntraced(function*(env: Env, partition: number, epoch: number) {
  const queue = env.partitioned === undefined ? undefined : yield* env.partitioned.make
  if (queue !== undefined && env.partitioned !== undefined) {
    env.partitioned.streams.offer({ partition, deliveries: env.partitioned.streamOf(queue) })
  }
  const p: PartitionState = {
    partition,
    epoch,
    tracker: Tracker.empty,
    inherited: new Set(),
    ready: false,
    buffer: [],
    fetched: undefined,
    handed: 0,
    paused: false,
    highWatermark: undefined,
    committed: undefined,
    committedVersion: 0,
    queue
  }
  return p
})

const startInherit = (env: Env, added: ReadonlyArray<PartitionState>) =>
  env.inherit(added.map((p) => p.partition)).pipe(
    Effect.flatMap((acked) =>
      offer(env, { _tag: "Inherited", epochs: new Map(added.map((p) => [p.partition, p.epoch])), acked })
    ),
    Effect.forkIn(env.scope)
  )

/** GROUP_JOIN: drop the revoked partitions, add the new ones, keep the retained ones (and their bound). */
const onAssigned = Effect.fnUntraced(function*(env: Env, state: State, assigned: ReadonlyArray<number>) {
  const wanted = new Set(assigned)
  const partitions = new Map<number, PartitionState>()
  const revoked: Array<number> = []
  for (const p of state.partitions.values()) {
    if (!wanted.has(p.partition)) {
      revoked.push(p.partition)
      p.queue?.end()
      continue
    }
    // a new generation starts unpaused in kafkajs; keep our bound
    if (p.paused) yield* setPaused(env, p.partition, true)
    partitions.set(p.partition, p)
  }
  let epoch = state.nextEpoch
  const added: Array<PartitionState> = []
  for (const partition of wanted) {
    if (partitions.has(partition)) continue
    const p = yield* newPartition(env, partition, epoch++)
    partitions.set(partition, p)
    added.push(p)
  }
  if (added.length > 0) yield* startInherit(env, added)
  if (revoked.length > 0) yield* Queue.offer(env.rebalances, { _tag: "Revoked", partitions: revoked })
  yield* Queue.offer(env.rebalances, { _tag: "Assigned", partitions: [...wanted].sort((a, b) => a - b) })
  if (wanted.size === 0) yield* Deferred.succeed(env.joined, undefined)
  return { ...state, partitions, nextEpoch: epoch, joined: true }
})

const onInherited = Effect.fnUntraced(function*(
  env: Env,
  state: State,
  command: Extract<Command, { _tag: "Inherited" }>
) {
  let next = state
  for (const [partition, epoch] of command.epochs) {
    const p = state.partitions.get(partition)
    if (p === undefined || p.epoch !== epoch) continue
    const ready = { ...p, ready: true, inherited: command.acked.get(partition) ?? p.inherited }
    next = withPartition(next, yield* pump(env, ready, state.intakeStopped))
  }
  return next
})

/** eachBatch: buffer what is new (records fetched again below what was fetched are not buffered twice). */
const onFetched = Effect.fnUntraced(function*(
  env: Env,
  state: State,
  command: Extract<Command, { _tag: "Fetched" }>
) {
  const p = state.partitions.get(command.partition)
  if (p === undefined || state.intakeStopped) return state
  const from = Math.max(p.fetched ?? -1, p.tracker.next ?? -1)
  const fresh: Array<Delivery.Pending> = []
  for (const message of command.messages) {
    const offset = Number(message.offset)
    if (offset >= from) fresh.push({ message, offset, attempt: 1 })
  }
  const last = fresh[fresh.length - 1]
  const buffered: PartitionState = {
    ...p,
    buffer: fresh.length === 0 ? p.buffer : [...p.buffer, ...fresh],
    fetched: last === undefined ? p.fetched : last.offset + 1,
    highWatermark: command.highWatermark ?? p.highWatermark
  }
  return withPartition(state, yield* pump(env, buffered, false))
})

const current = (state: State, partition: number, epoch: number) => {
  const p = state.partitions.get(partition)
  return p !== undefined && p.epoch === epoch ? p : undefined
}

const redeliverLater = (env: Env, command: Extract<Command, { _tag: "Settled" }>, delay: Duration.Duration) =>
  Effect.sleep(delay).pipe(
    Effect.andThen(offer(env, {
      _tag: "Redeliver",
      partition: command.partition,
      epoch: command.epoch,
      pending: { ...command.pending, attempt: command.pending.attempt + 1 }
    })),
    Effect.forkIn(env.scope)
  )

type Settled = Extract<Command, { _tag: "Settled" }>

const isAck = (command: Command | undefined): boolean =>
  command?._tag === "Settled" && command.outcome._tag === "Ack"

/** Acks folded together: one tracker update per partition (and assignment), one early commit at most. */
const onAcks = Effect.fnUntraced(function*(env: Env, state: State, acks: ReadonlyArray<Settled>) {
  const byPartition = new Map<number, { readonly epoch: number; readonly offsets: Array<number> }>()
  let counted = 0
  for (const command of acks) {
    if (current(state, command.partition, command.epoch) === undefined) continue
    const entry = byPartition.get(command.partition)
    // an assignment's acks: the epoch is the current one for all of them (checked above)
    if (entry === undefined) byPartition.set(command.partition, { epoch: command.epoch, offsets: [command.pending.offset] })
    else entry.offsets.push(command.pending.offset)
    counted++
  }
  if (counted === 0) return state
  const partitions = new Map(state.partitions)
  for (const [partition, { offsets }] of byPartition) {
    const p = partitions.get(partition)!
    partitions.set(partition, { ...p, tracker: Tracker.ackMany(p.tracker, offsets), handed: p.handed - offsets.length })
  }
  const total = state.acksSinceCommit + counted
  if (total >= env.commitEvery) yield* env.commitSoon
  return { ...state, partitions, acksSinceCommit: total >= env.commitEvery ? 0 : total }
})

const onNack = Effect.fnUntraced(function*(
  env: Env,
  state: State,
  p: PartitionState,
  command: Extract<Command, { _tag: "Settled" }>,
  outcome: Extract<Delivery.Outcome, { _tag: "Nack" }>
) {
  if (state.intakeStopped) return withPartition(state, { ...p, handed: p.handed - 1 })
  if (outcome.delay !== undefined) {
    yield* redeliverLater(env, command, outcome.delay)
    return withPartition(state, { ...p, handed: p.handed - 1 })
  }
  const again = { ...command.pending, attempt: command.pending.attempt + 1 }
  return withPartition(state, { ...p, handed: p.handed - 1, buffer: [again, ...p.buffer] })
})

/** A settlement folded without pumping (the caller pumps once for the turn). */
const settle = (env: Env, state: State, command: Settled): Effect.Effect<State> => {
  if (command.outcome._tag === "Ack") return onAcks(env, state, [command])
  const p = current(state, command.partition, command.epoch)
  return p === undefined ? Effect.succeed(state) : onNack(env, state, p, command, command.outcome)
}

const onSettled = Effect.fnUntraced(function*(env: Env, state: State, command: Settled) {
  if (current(state, command.partition, command.epoch) === undefined) return state
  return yield* pumpAll(env, yield* settle(env, state, command))
})

const onRedeliver = Effect.fnUntraced(function*(
  env: Env,
  state: State,
  command: Extract<Command, { _tag: "Redeliver" }>
) {
  const p = current(state, command.partition, command.epoch)
  if (p === undefined || state.intakeStopped) return state
  return withPartition(state, yield* pump(env, { ...p, buffer: [command.pending, ...p.buffer] }, false))
})

const onCommitted = (state: State, command: Extract<Command, { _tag: "Committed" }>): State => {
  let next = state
  for (const c of command.offsets) {
    const p = current(next, c.partition, c.epoch)
    if (p === undefined) continue
    next = withPartition(next, {
      ...p,
      committed: Math.max(p.committed ?? c.offset, c.offset),
      committedVersion: Math.max(p.committedVersion, c.version)
    })
  }
  return next
}

/** Handed out and not settled, over every partition. */
export const inFlight = (state: State): number => {
  let n = 0
  for (const p of state.partitions.values()) n += p.handed
  return n
}

/** Completes the drain once nothing handed out can still be settled. */
const checkDrained = (state: State) =>
  state.draining !== undefined && (state.readers === 0 || inFlight(state) === 0)
    ? Deferred.succeed(state.draining, undefined)
    : Effect.void

/** Takes back what no reader took (it is not settled: the next owner gets it from the commit). */
const takeBack = Effect.fnUntraced(function*(env: Env, state: State) {
  const queues = [env.shared, ...[...state.partitions.values()].flatMap((p) => (p.queue === undefined ? [] : [p.queue]))]
  const partitions = new Map(state.partitions)
  for (const queue of queues) {
    for (const delivery of yield* queue.drain) {
      yield* Delivery.abandon(delivery)
      const p = current({ ...state, partitions }, delivery.partition, delivery.epoch)
      if (p !== undefined) partitions.set(p.partition, { ...p, handed: p.handed - 1 })
    }
  }
  return { ...state, partitions }
})

/** Pauses everything, drops the buffers and takes back what no reader took. */
const onStopIntake = Effect.fnUntraced(function*(env: Env, state: State) {
  if (state.intakeStopped) return state
  const partitions = new Map<number, PartitionState>()
  for (const p of state.partitions.values()) {
    partitions.set(p.partition, yield* pump(env, { ...p, buffer: [] }, true))
  }
  return yield* takeBack(env, { ...state, partitions, intakeStopped: true })
})

const onStop = Effect.fnUntraced(function*(env: Env, state: State, drained: Deferred.Deferred<void>) {
  return { ...(yield* onStopIntake(env, state)), draining: drained }
})

/** One command folded over the state. */
export const step = Effect.fnUntraced(function*(env: Env, state: State, command: Command) {
  const next: State = yield* stepOf(env, state, command)
  yield* checkDrained(next)
  return next
})

/**
 * The commands of one turn (everything enqueued meanwhile) folded in order, as {@link step} one after
 * another would, but settlements do not pump one by one: consecutive acks update each partition's tracker
 * once, and the partitions are pumped once at the end of the turn. The turn's state is handed to `save`
 * BEFORE barriers and the drain complete: whoever waits for them reads the state they promise (a long turn
 * may yield to other fibers before it ends).
 */
export const stepAll = Effect.fnUntraced(function*(
  env: Env,
  state: State,
  commands: ReadonlyArray<Command>,
  save: (state: State) => Effect.Effect<void>
) {
  let next = state
  const barriers: Array<Deferred.Deferred<void>> = []
  for (let i = 0; i < commands.length;) {
    const command = commands[i]!
    if (isAck(command)) {
      let j = i + 1
      while (isAck(commands[j])) j++
      next = yield* onAcks(env, next, commands.slice(i, j) as Array<Settled>)
      i = j
      continue
    }
    if (command._tag === "Settled") next = yield* settle(env, next, command)
    else if (command._tag === "Barrier") barriers.push(command.done)
    else next = yield* stepOf(env, next, command)
    i++
  }
  if (commands.some((command) => command._tag === "Settled")) next = yield* pumpAll(env, next)
  yield* save(next)
  for (const done of barriers) yield* Deferred.succeed(done, undefined)
  yield* checkDrained(next)
  return next
})

const stepOf = (env: Env, state: State, command: Command): Effect.Effect<State> => {
  switch (command._tag) {
    case "Assigned":
      return onAssigned(env, state, command.partitions)
    case "Inherited":
      return onInherited(env, state, command)
    case "Fetched":
      return Effect.ensuring(onFetched(env, state, command), Effect.sync(command.done))
    case "FetchCompleted":
      return state.joined ? Effect.as(Deferred.succeed(env.joined, undefined), state) : Effect.succeed(state)
    case "Rebalancing":
      // commit the acknowledged prefix while this generation is still valid (it changes once all rejoined)
      return Effect.as(env.commitSoon, state)
    case "Crashed":
      return Effect.as(
        command.restart
          ? Effect.logDebug(`kafka consumer of ${env.destination} crashed; kafkajs restarts it`, String(command.error))
          : Effect.logWarning(`kafka consumer of ${env.destination} crashed; restarting it`, String(command.error)),
        state
      )
    case "Settled":
      return onSettled(env, state, command)
    case "Redeliver":
      return onRedeliver(env, state, command)
    case "Committed":
      return Effect.succeed(onCommitted(state, command))
    case "Readers":
      return Effect.succeed({ ...state, readers: state.readers + command.delta })
    case "Barrier":
      return Effect.as(Deferred.succeed(command.done, undefined), state)
    case "StopIntake":
      return onStopIntake(env, state)
    case "Stop":
      return onStop(env, state, command.drained)
  }
}

/** One partition's commit: the offset and the metadata listing what is acked above it. */
export interface Commit {
  readonly partition: number
  readonly epoch: number
  readonly offset: number
  readonly metadata: string
  readonly version: number
}

/** The commits the state calls for: every partition with acks since its last commit. */
export const commitsOf = (state: State): ReadonlyArray<Commit> => {
  const out: Array<Commit> = []
  for (const p of state.partitions.values()) {
    if (p.tracker.version === p.committedVersion) continue
    const offset = Tracker.commitOffset(p.tracker)
    if (offset === undefined) continue
    const next = p.tracker.next ?? offset
    // inherited offsets not fetched yet stay acked for whoever comes next (ascending: all are >= next)
    const acked = [...Tracker.ackedAbove(p.tracker), ...[...p.inherited].filter((o) => o >= next)]
    out.push({ partition: p.partition, epoch: p.epoch, offset, metadata: encodeAcked(offset, acked), version: p.tracker.version })
  }
  return out
}

/** Records between the acknowledged position and the partition's high watermark, per partition. */
export const lagOf = (state: State): ReadonlyMap<number, number> => {
  const out = new Map<number, number>()
  for (const p of state.partitions.values()) {
    const position = p.tracker.prefixEnd ?? p.committed ?? p.tracker.first
    if (p.highWatermark !== undefined && position !== undefined) {
      out.set(p.partition, Math.max(0, p.highWatermark - position))
    }
  }
  return out
}
