/**
 * The @platformatic/kafka consumer behind the shared subscription machinery (`../subscription.ts` and its
 * runloop): a group member (`Consumer`, classic protocol) with one `MessagesStream` of the destination in
 * `committed` mode, autocommit off. The stream's records become the runloop's `Fetched` commands (one per
 * partition for everything one fetch pushed), its `fetch` events `FetchCompleted`, the group's join and
 * rebalance events `Assigned` and `Rebalancing`, a stream or consumer error a crash (the Supervisor starts a
 * new consumer).
 *
 * - Backpressure: the runloop pauses a partition while its buffer holds records (`prefetch` handed out per
 *   partition). The messages stream has no per-partition pause, so the {@link Intake} pauses the whole
 *   stream while any assigned partition is paused: a partition's deliveries stay bounded by `prefetch`, the
 *   memory by `prefetch` plus one fetch per partition (and the stream's `highWaterMark`), at the cost of the
 *   other partitions waiting meanwhile (kafkajs pauses partitions one by one).
 * - Commits: `Consumer.commit` of the contiguous acked prefix. This client sends no commit metadata, so the
 *   offsets acked above the prefix (which the kafkajs backend writes there, `../offsets.ts`) are not
 *   recorded: after a rebalance they come again to the next owner (at-least-once). What a kafkajs member
 *   recorded there is read (through the kafkajs admin client of the control plane) and skipped as before.
 * - Rebalances: with the classic (eager) protocol the client emits no event before it rejoins, so nothing is
 *   committed when a rebalance starts; the acks since the last periodic commit on a partition that moves are
 *   redelivered to its next owner. `consumer:group:rebalance` (emitted on the cooperative path) still
 *   triggers a commit.
 */
import type { Consumer, Message, MessagesStream } from "@platformatic/kafka"
import { Consumer as PltConsumer, MessagesStreamFallbackModes, MessagesStreamModes } from "@platformatic/kafka"
import { IncomingEnvelope } from "@switchyard/core/adapter"
import { Effect } from "effect"
import type { IHeaders } from "kafkajs"
import type { RawRecord } from "../envelope.ts"
import type * as Runloop from "../runloop.ts"
import type { Driver, DriverContext } from "../subscription.ts"
import { partitionAssigner, protocol, protocolsMetadata } from "./assigner.ts"
import { subscribeError } from "./errors.ts"
import { baseOptions } from "./options.ts"

type Stream = MessagesStream<Buffer, Buffer, Buffer, Buffer>
type Topics = Parameters<Runloop.Pausable["pause"]>[0]

/** A record of the stream as the runloop reads it (text header names, the value bytes as they came). */
export const toRawRecord = (message: Message<Buffer, Buffer, Buffer, Buffer>): RawRecord => {
  const headers: IHeaders = {}
  for (const [raw, value] of message.headerEntries) {
    const name = raw.toString()
    // a repeated name: the last value wins, as the envelope reads kafkajs's arrays
    IncomingEnvelope.putHeader(headers, name, value)
  }
  return {
    offset: String(message.offset),
    // the client hands an absent key or value as `undefined`
    key: message.key ?? null,
    value: message.value ?? null,
    headers,
    timestamp: String(message.timestamp)
  }
}

/**
 * The consumer as the runloop sees it: partitions paused and resumed one by one, applied to the messages
 * stream as a whole (paused while any partition is), and the fetched records grouped per partition.
 */
export class Intake implements Runloop.Pausable {
  readonly paused = new Set<number>()
  /** The stream, once `consume` returned it. */
  readonly streams: Array<Stream> = []
  /** What removes the listeners this backend added. */
  readonly removers: Array<() => void> = []
  /** Records pushed since the last flush, per partition. */
  private readonly pending = new Map<number, Array<RawRecord>>()

  constructor(readonly consumer: Consumer<Buffer, Buffer, Buffer, Buffer>, private readonly context: DriverContext) {}

  readonly pause = (topics: Topics): void => {
    for (const t of topics) for (const p of t.partitions) this.paused.add(p)
    this.apply()
  }

  readonly resume = (topics: Topics): void => {
    for (const t of topics) for (const p of t.partitions) this.paused.delete(p)
    this.apply()
  }

  /** A new assignment: partitions no longer owned are not paused any more (the runloop drops them). */
  assigned(partitions: ReadonlyArray<number>): void {
    const owned = new Set(partitions)
    for (const p of [...this.paused]) if (!owned.has(p)) this.paused.delete(p)
    this.apply()
  }

  /** Pauses the stream while any partition is paused, resumes it once none is. */
  apply(): void {
    for (const stream of this.streams) {
      if (this.paused.size > 0) stream.pause()
      else if (stream.isPaused()) stream.resume()
    }
  }

  /** One record pushed by the stream: grouped with the rest of its fetch, flushed in a microtask. */
  readonly onData = (message: Message<Buffer, Buffer, Buffer, Buffer>): void => {
    if (this.pending.size === 0) queueMicrotask(this.flush)
    const records = this.pending.get(message.partition)
    const record = toRawRecord(message)
    if (records === undefined) this.pending.set(message.partition, [record])
    else records.push(record)
  }

  private readonly flush = (): void => {
    for (const [partition, messages] of this.pending) {
      this.context.offer({ _tag: "Fetched", partition, messages, highWatermark: undefined, done: noop })
    }
    this.pending.clear()
  }
}

const noop = () => {}

/** The member's settings, given to the consumer and again to its messages stream (which takes its own copy). */
const groupOptions = (context: DriverContext) => {
  const r = context.opts.connection.resolved
  return {
    autocommit: false,
    sessionTimeout: r.sessionTimeout,
    heartbeatInterval: r.heartbeatInterval,
    rebalanceTimeout: r.rebalanceTimeout,
    maxWaitTime: r.maxWaitTime,
    maxBytesPerPartition: r.maxBytesPerPartition,
    highWaterMark: Math.max(64, context.opts.options.prefetch)
  } as const
}

const makeConsumer = (context: DriverContext): Intake => {
  const { connection, destination, options } = context.opts
  const consumer = new PltConsumer<Buffer, Buffer, Buffer, Buffer>({
    ...baseOptions(connection.resolved, "consumer"),
    groupId: options.group,
    ...groupOptions(context),
    protocols: [{ ...protocol }],
    protocolsMetadata: protocolsMetadata(() => ({ [destination]: [...context.owned()] })),
    partitionAssigner
  })
  const intake = new Intake(consumer, context)
  const onJoin = (payload: { readonly assignments?: ReadonlyArray<{ readonly topic: string; readonly partitions: ReadonlyArray<number> }> | undefined }) => {
    const partitions = payload.assignments?.find((a) => a.topic === destination)?.partitions ?? []
    intake.assigned(partitions)
    context.offer({ _tag: "Assigned", partitions })
  }
  const onRebalance = () => context.offer({ _tag: "Rebalancing" })
  // an emitted error without a listener would throw: a failed rejoin leaves the member without heartbeats
  const onError = (error: unknown) => crash(context, error)
  consumer.on("consumer:group:join", onJoin)
  consumer.on("consumer:group:rebalance", onRebalance)
  consumer.on("error", onError)
  intake.removers.push(() => {
    consumer.off("consumer:group:join", onJoin)
    consumer.off("consumer:group:rebalance", onRebalance)
    consumer.off("error", onError)
    // keep one: an error while closing must not throw
    consumer.on("error", noop)
  })
  return intake
}

const crash = (context: DriverContext, error: unknown) => {
  context.offer({ _tag: "Crashed", error, restart: false })
  context.crashed(error)
}

const listenTo = (intake: Intake, stream: Stream, context: DriverContext) => {
  const onFetch = () => {
    if (!context.joined()) context.offer({ _tag: "FetchCompleted" })
  }
  const onError = (error: unknown) => crash(context, error)
  stream.on("data", intake.onData)
  stream.on("fetch", onFetch)
  stream.on("error", onError)
  intake.removers.push(() => {
    stream.off("data", intake.onData)
    stream.off("fetch", onFetch)
    stream.off("error", onError)
    stream.on("error", noop)
  })
}

const unlisten = (intake: Intake) => () => {
  for (const remove of intake.removers.splice(0)) remove()
}

const run = (intake: Intake, context: DriverContext) => {
  const { destination, options } = context.opts
  return Effect.tryPromise({
    try: () =>
      intake.consumer.consume({
        topics: [destination],
        mode: MessagesStreamModes.COMMITTED,
        fallbackMode: options.startFrom === "earliest" ? MessagesStreamFallbackModes.EARLIEST : MessagesStreamFallbackModes.LATEST,
        ...groupOptions(context)
      }),
    catch: (cause) => subscribeError(destination, cause, "consumer start failed")
  }).pipe(
    Effect.tap((stream) =>
      Effect.sync(() => {
        intake.streams.push(stream)
        listenTo(intake, stream, context)
        intake.apply()
      })
    ),
    Effect.asVoid
  )
}

const close = async (intake: Intake): Promise<void> => {
  for (const stream of intake.streams) await stream.close().catch(() => undefined)
  await intake.consumer.close().catch(() => intake.consumer.close(true)).catch(() => undefined)
}

/** The consumer driver of the @platformatic/kafka backend. */
export const driver: Driver<Intake> = {
  make: (context) => {
    const intake = makeConsumer(context)
    return { consumer: intake, unlisten: unlisten(intake) }
  },
  run,
  close,
  commit: (intake, destination, commits) =>
    intake.consumer.commit({
      offsets: commits.map((c) => ({ topic: destination, partition: c.partition, offset: BigInt(c.offset), leaderEpoch: -1 }))
    })
}
