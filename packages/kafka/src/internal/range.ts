/**
 * Reads the partitions of a topic from their earliest offsets up to given end offsets, outside any real
 * consumer group: a throwaway group that never commits (deleted by whoever owns the group id), for an
 * operator's read (`browse`). kafkajs has no group-less fetch, so a consumer of its own group is the way.
 *
 * - The stream ENDS once every partition reached its end offset (records at or past it are left alone);
 *   batches that only hold control records (transaction markers) count as progress too, and so does a
 *   partition's earliest offset reaching its end (records deleted by retention before they were fetched).
 * - Backpressure: at most `prefetch` records are handed out and not yet released; `eachBatch` waits for
 *   room (heartbeating meanwhile, so the member is not expelled while an operator holds records).
 * - A rejoin (after a session expiry) restarts from the earliest offsets: records below what was already
 *   handed out are skipped, so nothing is delivered twice.
 */
import { Cause, Effect, Option, Queue, Result, Schedule, Semaphore, Stream } from "effect"
import type { Scope } from "effect"
import type { Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import type { EachBatchPayload, KafkaMessage } from "kafkajs"
import type { KafkaConnection } from "../KafkaConnection.ts"
import { subscribeError } from "./errors.ts"

/** One record read, with the effect that frees its room in the `prefetch` bound (run it once). */
export interface RangeRecord {
  readonly partition: number
  readonly message: KafkaMessage
  readonly release: Effect.Effect<void>
}

/** What to read. */
export interface RangeOptions {
  /** Its admin client watches the partitions' earliest offsets (retention may delete a range before it is fetched). */
  readonly connection: KafkaConnection["Service"]
  readonly topic: string
  readonly groupId: string
  /** End offset (exclusive) per partition; partitions not listed are not read. */
  readonly ends: ReadonlyMap<number, number>
  readonly prefetch: number
  /** Records to pass over without handing them out (e.g. recorded as removed). */
  readonly skip?: ((partition: number, message: KafkaMessage) => boolean) | undefined
}

/**
 * Opens the read in the current scope (the consumer leaves its group when the scope closes).
 */
export const readRange = (
  opts: RangeOptions
): Effect.Effect<Stream.Stream<RangeRecord, Errors.SubscribeError>, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const { connection, topic } = opts
    const settings = connection.resolved
    const remaining = new Set([...opts.ends].filter(([, end]) => end > 0).map(([partition]) => partition))
    if (remaining.size === 0) return Stream.empty
    const queue = yield* Queue.unbounded<RangeRecord, Errors.SubscribeError | Cause.Done>()
    const permits = yield* Semaphore.make(Math.max(1, opts.prefetch))
    /** The next offset to hand out, per partition. */
    const next = new Map<number, number>()
    const closed = new AbortController()

    const consumer = connection.kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout: settings.sessionTimeout,
      heartbeatInterval: settings.heartbeatInterval,
      rebalanceTimeout: settings.rebalanceTimeout,
      maxWaitTimeInMs: settings.maxWaitTime,
      maxBytesPerPartition: settings.maxBytesPerPartition,
      allowAutoTopicCreation: false
    })

    const finish = (partition: number) => {
      if (!remaining.delete(partition)) return
      // kafkajs throws when it is not running (any more): nothing to pause then
      Result.try(() => consumer.pause([{ topic, partitions: [partition] }]))
      if (remaining.size === 0) Queue.endUnsafe(queue)
    }

    const advance = (partition: number, lastOffset: string) => {
      const end = opts.ends.get(partition)
      if (end !== undefined && Number(lastOffset) >= end - 1) finish(partition)
    }

    /** Waits for room in the bound; false when the read closed or the member must rejoin meanwhile. */
    const room = (heartbeat: () => Promise<void>): Promise<boolean> =>
      Effect.runPromise(
        permits.take(1).pipe(
          Effect.timeoutOption(settings.heartbeatInterval),
          Effect.flatMap((taken) =>
            Option.isSome(taken)
              ? Effect.succeed(Option.some(true))
              : Effect.tryPromise(heartbeat).pipe(Effect.as(Option.none<boolean>()), Effect.catch(() => Effect.succeed(Option.some(false))))
          ),
          Effect.repeat({ until: Option.isSome }),
          Effect.map((done) => Option.getOrElse(done, () => false))
        ),
        { signal: closed.signal }
      ).catch(() => false)

    const eachBatch = async ({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> => {
      const partition = batch.partition
      const end = opts.ends.get(partition)
      if (end === undefined) return
      for (const message of batch.messages) {
        if (closed.signal.aborted || !isRunning() || isStale()) return
        const offset = Number(message.offset)
        if (offset >= end || offset < (next.get(partition) ?? 0)) continue
        if (opts.skip === undefined || !opts.skip(partition, message)) {
          if (!(await room(heartbeat))) return
          // released once, however often it is run (the kit's settle-once)
          const release = Effect.ignore(new Settlement.Once(topic).run(permits.release(1).pipe(Effect.asVoid)))
          Queue.offerUnsafe(queue, { partition, message, release })
        }
        next.set(partition, offset + 1)
        resolveOffset(message.offset)
      }
      advance(partition, batch.lastOffset())
    }

    const listeners = [
      // batches of control records only (transaction markers) never reach eachBatch, yet they move the end
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.topic === topic && payload.batchSize === 0) advance(payload.partition, payload.lastOffset)
      }),
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) Queue.failCauseUnsafe(queue, Cause.fail(subscribeError(topic, payload.error, "browse consumer crashed")))
      })
    ]

    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          await consumer.connect()
          await consumer.subscribe({ topics: [topic], fromBeginning: true })
          await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch })
        },
        catch: (cause) => subscribeError(topic, cause, "browse consumer start failed")
      }),
      () =>
        Effect.promise(async () => {
          closed.abort()
          for (const remove of listeners) remove()
          await consumer.disconnect().catch(() => undefined)
        }).pipe(Effect.andThen(Queue.end(queue)))
    )
    // a partition whose records up to its end were all deleted (retention, deleteRecords) before they were
    // fetched yields no batch at all: it is done once its earliest offset reached the end
    yield* Effect.tryPromise(() => connection.admin.fetchTopicOffsets(topic)).pipe(
      Effect.tap((offsets) =>
        Effect.sync(() => {
          for (const o of offsets) if (Number(o.low) >= (opts.ends.get(o.partition) ?? 0)) finish(o.partition)
        })
      ),
      Effect.ignore,
      Effect.repeat({ schedule: Schedule.spaced("1 second"), until: () => remaining.size === 0 }),
      Effect.forkScoped
    )
    return Stream.fromQueue(queue)
  })
