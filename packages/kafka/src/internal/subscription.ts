/**
 * `Broker.subscribe` for Kafka: a client's consumer (a {@link Driver}: kafkajs here, @platformatic/kafka in
 * `platformatic/consume.ts`) whose callbacks only enqueue commands for the runloop
 * (`runloop.ts`), the deliveries handed over through bounded `DeliveryQueue`s, commits on a `Schedule`
 * (`commitInterval`), early after `commitEvery` acks and when a rebalance starts.
 *
 * - Commits: the end of each partition's contiguous acked prefix (`offsetTracker.ts`), with the offsets
 *   acked above it in the commit's metadata (`offsets.ts`): the next owner skips them, so nothing acked is
 *   handled twice after a rebalance, restart or SIGTERM, while what was delivered and not acked comes back.
 * - Crashes: kafkajs restarts itself after retriable ones; after any other, the adapter kit's `Supervisor`
 *   starts a new consumer on `reconnectSchedule` and fails the streams only when that gives up.
 * - Shutdown: the runloop pauses everything and takes back what no reader took; the finalizer awaits the
 *   drain (`Deferred`, up to `drainTimeout`), commits, ends the streams; then the consumer leaves the group.
 */
import { Cause, Deferred, Effect, Exit, Metric, Option, Queue, Ref, Schedule, type Scope, Semaphore, Stream } from "effect"
import { Errors } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import { DeliveryQueue, Supervisor } from "@switchyard/core/adapter"
import type { Consumer, EachBatchPayload } from "kafkajs"
import type { KafkaConnection } from "../KafkaConnection.ts"
import { makeAssigner } from "./assigner.ts"
import type { KafkaDelivery } from "./delivery.ts"
import { subscribeError } from "./errors.ts"
import { decodeAcked } from "./offsets.ts"
import * as Runloop from "./runloop.ts"

/** Options the subscription needs. */
export interface SubscriptionOptions {
  readonly connection: KafkaConnection["Service"]
  readonly destination: string
  /** Partitions of the topic when subscribing (sizes the shared queue: `prefetch` per partition). */
  readonly partitionCount: number
  readonly options: Broker.SubscribeOptions
  /** Route deliveries to one queue per partition (see `partitions`) instead of the single stream. */
  readonly partitioned?: boolean | undefined
}

/** A partition's own stream of deliveries; it ends when the partition is revoked. */
export type PartitionStream = Runloop.PartitionStream

/** An assignment change seen by this member. */
export type RebalanceEvent = Runloop.RebalanceEvent

/** Consumer lag per partition (high watermark minus the acknowledged position), updated on every commit. */
export const lagGauge = Metric.gauge("switchyard_kafka_consumer_lag", {
  description: "Records between the acknowledged position and the partition's high watermark"
})

/** A running subscription: the contract's stream plus the native extras. */
export interface RunningSubscription extends Broker.Subscription {
  readonly stopIntake: Effect.Effect<void>
  readonly commit: Effect.Effect<void>
  readonly partitions: Stream.Stream<PartitionStream, Errors.SubscribeError>
  readonly rebalances: Stream.Stream<RebalanceEvent, Errors.SubscribeError>
  readonly lag: Effect.Effect<ReadonlyMap<number, number>>
}

/**
 * What a client library provides to the subscription machinery (kafkajs: {@link kafkajsDriver}; the
 * @platformatic/kafka backend: `platformatic/consume.ts`). Its consumer is {@link Runloop.Pausable}: the
 * runloop pauses and resumes its partitions.
 */
export interface Driver<C extends Runloop.Pausable> {
  /** Makes a consumer whose events are offered as commands; returns it and what removes its listeners. */
  readonly make: (context: DriverContext) => { readonly consumer: C; readonly unlisten: () => void }
  /** Joins the group and starts fetching. */
  readonly run: (consumer: C, context: DriverContext) => Effect.Effect<void, Errors.SubscribeError>
  /** Leaves the group and closes the consumer (failures are ignored). */
  readonly close: (consumer: C) => Promise<void>
  /** Commits the offsets (and, where the client can, their metadata). */
  readonly commit: (consumer: C, destination: string, commits: ReadonlyArray<Runloop.Commit>) => Promise<void>
}

/** What a driver's consumer talks to. */
export interface DriverContext {
  readonly opts: SubscriptionOptions
  /** Enqueues a command for the runloop (never blocks). */
  readonly offer: (command: Runloop.Command) => void
  /** The partitions this member owns now (for a sticky assigner). */
  readonly owned: () => ReadonlyArray<number>
  /** Whether the subscription is joined (a fetch after the first assignment was seen). */
  readonly joined: () => boolean
  /** Reports that the consumer crashed for good (the client does not restart it itself). */
  readonly crashed: (error: unknown) => void
}

interface Running<C> {
  readonly consumer: C
  /** Completed when the consumer crashed for good. */
  readonly crashed: Deferred.Deferred<unknown>
}

/** The moving parts shared by the functions below. */
interface Parts<C> {
  readonly opts: SubscriptionOptions
  readonly commands: Queue.Queue<Runloop.Command>
  readonly state: Ref.Ref<Runloop.State>
  readonly running: Ref.Ref<Option.Option<C>>
  readonly joined: Deferred.Deferred<void>
}

const eachBatch = (offer: DriverContext["offer"]) => (payload: EachBatchPayload): Promise<void> => {
  const { batch, isRunning, isStale, resolveOffset } = payload
  const last = batch.messages[batch.messages.length - 1]
  if (!isRunning() || isStale() || last === undefined) return Promise.resolve()
  // waits for the runloop to take the batch: kafkajs fetches this partition again only after that
  return new Promise<void>((done) => {
    offer({
      _tag: "Fetched",
      partition: batch.partition,
      messages: batch.messages,
      highWatermark: Number(batch.highWatermark),
      done
    })
  }).then(() => resolveOffset(last.offset))
}

const makeConsumer = (context: DriverContext): Consumer => {
  const { connection, options } = context.opts
  const r = connection.resolved
  const owned = () => ({ [context.opts.destination]: [...context.owned()] })
  return connection.kafka.consumer({
    groupId: options.group,
    sessionTimeout: r.sessionTimeout,
    heartbeatInterval: r.heartbeatInterval,
    rebalanceTimeout: r.rebalanceTimeout,
    maxWaitTimeInMs: r.maxWaitTime,
    maxBytesPerPartition: r.maxBytesPerPartition,
    metadataMaxAge: r.metadataMaxAge,
    allowAutoTopicCreation: false,
    partitionAssigners: [makeAssigner(owned)]
  })
}

/** The consumer's events as commands; returns what removes the listeners. */
const listen = (context: DriverContext, consumer: Consumer) => {
  const { offer, opts } = context
  const removers = [
    consumer.on(consumer.events.GROUP_JOIN, (event) =>
      offer({ _tag: "Assigned", partitions: event.payload.memberAssignment[opts.destination] ?? [] })),
    consumer.on(consumer.events.FETCH, () => {
      if (!context.joined()) offer({ _tag: "FetchCompleted" })
    }),
    consumer.on(consumer.events.REBALANCING, () => offer({ _tag: "Rebalancing" })),
    consumer.on(consumer.events.CRASH, (event) => {
      offer({ _tag: "Crashed", error: event.payload.error, restart: event.payload.restart })
      if (!event.payload.restart) context.crashed(event.payload.error)
    })
  ]
  return () => removers.forEach((remove) => remove())
}

/** The kafkajs consumer: `eachBatch` waits for the runloop; partitions are paused through kafkajs. */
export const kafkajsDriver: Driver<Consumer> = {
  make: (context) => {
    const consumer = makeConsumer(context)
    return { consumer, unlisten: listen(context, consumer) }
  },
  run: (consumer, context) => {
    const { destination, options } = context.opts
    return Effect.tryPromise({
      try: async () => {
        await consumer.connect()
        await consumer.subscribe({ topics: [destination], fromBeginning: options.startFrom === "earliest" })
        await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: eachBatch(context.offer) })
      },
      catch: (cause) => subscribeError(destination, cause, "consumer start failed")
    })
  },
  close: (consumer) => consumer.disconnect().catch(() => undefined),
  commit: (consumer, destination, commits) =>
    consumer.commitOffsets(commits.map((c) => ({
      topic: destination,
      partition: c.partition,
      offset: String(c.offset),
      metadata: c.metadata
    })))
}

const contextOf = <C>(parts: Parts<C>, crashed: Deferred.Deferred<unknown>): DriverContext => ({
  opts: parts.opts,
  offer: (command) => Queue.offerUnsafe(parts.commands, command),
  owned: () => [...Ref.getUnsafe(parts.state).partitions.keys()],
  joined: () => Deferred.isDoneUnsafe(parts.joined),
  crashed: (error) => Deferred.doneUnsafe(crashed, Exit.succeed(error))
})

/** Starts a consumer in the current scope (it leaves the group when the scope closes). */
const start = <C extends Runloop.Pausable>(
  driver: Driver<C>,
  parts: Parts<C>
): Effect.Effect<Running<C>, Errors.SubscribeError, Scope.Scope> => {
  const acquire = Effect.gen(function*() {
    const crashed = yield* Deferred.make<unknown>()
    const context = contextOf(parts, crashed)
    const { consumer, unlisten } = driver.make(context)
    yield* Ref.set(parts.running, Option.some(consumer))
    return { consumer, crashed, unlisten, context }
  })
  // (after a crash the Supervisor releases the old consumer once the new one runs: leave the new one in place)
  const release = (running: { readonly consumer: C; readonly unlisten: () => void }) =>
    Effect.sync(running.unlisten).pipe(
      Effect.andThen(Effect.promise(() => driver.close(running.consumer))),
      Effect.andThen(
        Ref.update(parts.running, (current) =>
          Option.isSome(current) && current.value === running.consumer ? Option.none() : current)
      )
    )
  return Effect.acquireRelease(acquire, release).pipe(Effect.tap((running) => driver.run(running.consumer, running.context)))
}

/** What previous owners acked above their commits, for the given partitions (empty when unreadable). */
const inherit = <C>(parts: Parts<C>) => (partitions: ReadonlyArray<number>) =>
  Effect.tryPromise(() =>
    parts.opts.connection.admin.fetchOffsets({ groupId: parts.opts.options.group, topics: [parts.opts.destination] })
  ).pipe(
    Effect.map((result) => {
      const wanted = new Set(partitions)
      const out = new Map<number, ReadonlySet<number>>()
      for (const p of result[0]?.partitions ?? []) {
        const base = Number(p.offset)
        if (wanted.has(p.partition) && base >= 0) out.set(p.partition, decodeAcked(base, p.metadata))
      }
      return out
    }),
    // without it, records acked by the previous owner above its commit are handled again (at-least-once)
    Effect.catch((error) =>
      Effect.as(Effect.logDebug("could not read the inherited acks", String(error)), new Map<number, ReadonlySet<number>>())
    )
  )

/** Commits what the state calls for (serialized: a later commit never sends less than an earlier one). */
const makeCommit = <C extends Runloop.Pausable>(
  driver: Driver<C>,
  parts: Parts<C>,
  lock: Semaphore.Semaphore
): Effect.Effect<void> => {
  const { destination, options } = parts.opts
  const send = Effect.gen(function*() {
    const commits = Runloop.commitsOf(yield* Ref.get(parts.state))
    const consumer = yield* Ref.get(parts.running)
    if (commits.length === 0 || Option.isNone(consumer)) return
    yield* Effect.tryPromise(() => driver.commit(consumer.value, destination, commits))
    yield* Queue.offer(parts.commands, { _tag: "Committed", offsets: commits })
    const lag = Runloop.lagOf(yield* Ref.get(parts.state))
    yield* Effect.forEach(commits, (c) => {
      const value = lag.get(c.partition)
      return value === undefined ? Effect.void : Metric.update(
        Metric.withAttributes(lagGauge, { topic: destination, group: options.group, partition: String(c.partition) }),
        value
      )
    }, { discard: true })
  })
  return lock.withPermit(send).pipe(
    Effect.catch((e) => Effect.logDebug("kafka commit failed; retried with the next one", String(e)))
  )
}

const failAll = <C>(parts: Parts<C>, queues: Queues, error: Errors.SubscribeError) =>
  Effect.gen(function*() {
    queues.shared.fail(error)
    queues.streams.fail(error)
    Queue.failCauseUnsafe(queues.rebalances, Cause.fail(error))
    for (const p of (yield* Ref.get(parts.state)).partitions.values()) p.queue?.fail(error)
    yield* Deferred.succeed(parts.joined, undefined)
  })

interface Queues {
  readonly shared: DeliveryQueue.DeliveryQueue<KafkaDelivery>
  readonly streams: DeliveryQueue.DeliveryQueue<PartitionStream>
  readonly rebalances: Queue.Queue<RebalanceEvent, Errors.SubscribeError | Cause.Done>
}

const endAll = <C>(parts: Parts<C>, queues: Queues) =>
  Effect.gen(function*() {
    queues.shared.end()
    queues.streams.end()
    yield* Queue.end(queues.rebalances)
    for (const p of (yield* Ref.get(parts.state)).partitions.values()) p.queue?.end()
  })

/** Readers are counted: once none reads, nothing handed out can still be settled (the drain ends). */
const counted = <C, A, E>(parts: Parts<C>, stream: Stream.Stream<A, E>): Stream.Stream<A, E> =>
  Stream.unwrap(
    Effect.as(
      Queue.offer(parts.commands, { _tag: "Readers", delta: 1 }),
      stream.pipe(Stream.ensuring(Queue.offer(parts.commands, { _tag: "Readers", delta: -1 })))
    )
  )

const isLive = <C>(parts: Parts<C>) => (partition: number, epoch: number): boolean =>
  Ref.getUnsafe(parts.state).partitions.get(partition)?.epoch === epoch

const liveOnly = <C>(parts: Parts<C>) => (d: KafkaDelivery): boolean => !d.once.settled && isLive(parts)(d.partition, d.epoch)

const shutdown = <C>(parts: Parts<C>, queues: Queues, commit: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const drained = yield* Deferred.make<void>()
    yield* Queue.offer(parts.commands, { _tag: "Stop", drained })
    yield* Deferred.await(drained).pipe(
      Effect.timeoutOrElse({ duration: parts.opts.connection.resolved.drainTimeout, orElse: () => Effect.void })
    )
    yield* commit
    yield* endAll(parts, queues)
  })

/** Waits until the runloop folded everything enqueued so far (e.g. the acks that returned before). */
const barrier = <C>(parts: Parts<C>) =>
  Effect.flatMap(Deferred.make<void>(), (done) =>
    Queue.offer(parts.commands, { _tag: "Barrier", done }).pipe(Effect.andThen(Deferred.await(done))))

/** The runloop fiber: takes every command enqueued meanwhile and folds them over the state in one turn. */
const runloop = <C>(parts: Parts<C>, env: Runloop.Env) =>
  Queue.takeAll(parts.commands).pipe(
    Effect.flatMap((commands) =>
      Ref.get(parts.state).pipe(Effect.flatMap((state) => Runloop.stepAll(env, state, commands, (next) => Ref.set(parts.state, next))))
    ),
    Effect.forever
  )

const makeQueues = Effect.fn("Kafka.makeQueues")(function*(opts: SubscriptionOptions, prefetch: number) {
  const shared = yield* DeliveryQueue.make<KafkaDelivery>({ capacity: prefetch * Math.max(1, opts.partitionCount) })
  const streams = yield* DeliveryQueue.make<PartitionStream>({ capacity: 4096 })
  // nobody has to read the rebalance events: the oldest go when it fills
  const rebalances = yield* Queue.sliding<RebalanceEvent, Errors.SubscribeError | Cause.Done>(1024)
  return { shared, streams, rebalances } satisfies Queues
})

const makeEnv = <C extends Runloop.Pausable>(
  parts: Parts<C>,
  queues: Queues,
  commit: Effect.Effect<void>,
  prefetch: number,
  scope: Scope.Scope
): Runloop.Env => ({
  destination: parts.opts.destination,
  prefetch,
  commitEvery: parts.opts.connection.resolved.commitEvery,
  commands: parts.commands,
  shared: queues.shared,
  partitioned: parts.opts.partitioned === true
    ? {
      make: DeliveryQueue.make<KafkaDelivery>({ capacity: prefetch }),
      streams: queues.streams,
      streamOf: (queue) => queue.stream.pipe(Stream.filter(liveOnly(parts)))
    }
    : undefined,
  rebalances: queues.rebalances,
  consumer: Ref.get(parts.running),
  inherit: inherit(parts),
  commitSoon: Effect.asVoid(Effect.forkIn(commit, scope)),
  joined: parts.joined,
  handlers: {
    settle: (partition, epoch, pending, outcome) =>
      Queue.offer(parts.commands, { _tag: "Settled", partition, epoch, pending, outcome }).pipe(Effect.asVoid),
    isLive: isLive(parts)
  },
  scope
})

const timedOut = (destination: string) =>
  new Errors.SubscribeError({
    destination,
    reason: Errors.reason("Timeout", "no partition assignment within the timeout")
  })

/** Subscribes in the current scope through a client's driver. */
export const subscribeWith = <C extends Runloop.Pausable>(driver: Driver<C>) =>
(
  opts: SubscriptionOptions
): Effect.Effect<RunningSubscription, Errors.SubscribeError, Scope.Scope> =>
  subscribeOn(driver, opts)

const subscribeOn = Effect.fn("Kafka.subscribe")(function*<C extends Runloop.Pausable>(driver: Driver<C>, opts: SubscriptionOptions) {
  const { connection, destination } = opts
  const resolved = connection.resolved
  const prefetch = Math.max(1, opts.options.prefetch)
  const scope = yield* Effect.scope
  const parts: Parts<C> = {
    opts,
    // unbounded, so a kafkajs callback never blocks; what it holds is bounded by what the commands stand for
    // (fetched batches wait for the runloop, settlements by the deliveries handed out)
    commands: yield* Queue.unbounded<Runloop.Command>(),
    state: yield* Ref.make(Runloop.initial),
    running: yield* Ref.make(Option.none<C>()),
    joined: yield* Deferred.make<void>()
  }
  const queues = yield* makeQueues(opts, prefetch)
  const commit = makeCommit(driver, parts, yield* Semaphore.make(1))
  const env = makeEnv(parts, queues, commit, prefetch, scope)
  // forked first, so it outlives the consumer: eachBatch waits for it until the consumer has left
  yield* Effect.forkIn(runloop(parts, env), scope)
  const supervised = yield* Supervisor.make({
    acquire: start(driver, parts),
    lost: (running) => Deferred.await(running.crashed),
    schedule: resolved.reconnectSchedule
  })
  yield* Deferred.await(supervised.failure).pipe(
    Effect.catch((error) => failAll(parts, queues, error)),
    Effect.forkIn(scope)
  )
  yield* Deferred.await(parts.joined).pipe(
    Effect.timeoutOrElse({
      duration: Math.max(30_000, resolved.rebalanceTimeout),
      orElse: () => Effect.fail(timedOut(destination))
    })
  )
  yield* commit.pipe(Effect.repeat(Schedule.spaced(resolved.commitInterval)), Effect.forkIn(scope))
  yield* Effect.addFinalizer(() => shutdown(parts, queues, commit))
  return {
    deliveries: counted(parts, queues.shared.stream.pipe(Stream.filter(liveOnly(parts)))),
    stopIntake: Queue.offer(parts.commands, { _tag: "StopIntake" }).pipe(Effect.andThen(barrier(parts))),
    commit: Effect.andThen(barrier(parts), commit),
    partitions: counted(parts, queues.streams.stream),
    rebalances: Stream.fromQueue(queues.rebalances),
    lag: barrier(parts).pipe(Effect.andThen(Ref.get(parts.state)), Effect.map(Runloop.lagOf))
  } satisfies RunningSubscription
})

/** Subscribes in the current scope (kafkajs). */
export const subscribe: (
  opts: SubscriptionOptions
) => Effect.Effect<RunningSubscription, Errors.SubscribeError, Scope.Scope> = subscribeWith(kafkajsDriver)
