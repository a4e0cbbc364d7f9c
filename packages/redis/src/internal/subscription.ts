/**
 * Subscribe: a member of a consumer group with its own consumer name and a dedicated connection (supervised
 * by the kit's `Supervisor`) for its reads, feeding the kit's `DeliveryQueue`. One loop owns the reads, so
 * it never asks for more than there is room for (`prefetch` minus what it holds unsettled):
 *
 * 1. after (re)connecting, its own pending entries first: `XREADGROUP … 0` pages through them (attempt from
 *    the delivery count), skipping what it still holds;
 * 2. every `claimInterval` (at once after a nack) `XAUTOCLAIM` of entries idle past the ack deadline (crashed or
 *    stalled members', nacked ones): attempt = the delivery count (`XPENDING`); ids reported deleted were
 *    trimmed before anyone acked them: removed from the pending list, logged and counted;
 * 3. otherwise new entries: `XREADGROUP … COUNT room BLOCK block STREAMS key >`.
 *
 * What a member holds stays fresh: every third of the ack deadline it resets the idle time of its unsettled
 * entries (`XCLAIM … JUSTID` to itself), so only a crashed or stalled member's entries are claimed. Closing
 * (and `stopIntake` for what was not taken) hands entries back by marking them idle past the deadline: the
 * next member's claim takes them at once. A consumer name without pending entries is deleted at close, and
 * stale ones (no pending entries, idle past the deadline) by the next member that subscribes.
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Metric, Queue, Schedule, Scope } from "effect"
import { type Broker, Errors } from "@switchyard/core"
import { DeliveryQueue, Supervisor } from "@switchyard/core/adapter"
import type { Client, RedisConnectionShape } from "../RedisConnection.ts"
import type { RedisTopologyShape } from "../RedisTopology.ts"
import * as Delivery from "./delivery.ts"
import { fromEntry, type RawEntry } from "./envelope.ts"
import { ackError, isNoGroup, subscribeError } from "./errors.ts"
import * as Replies from "./replies.ts"

/**
 * Entries found deleted (trimmed) while still pending in a group: lost before anyone acknowledged them.
 */
export const trimmedUnacked = Metric.counter("switchyard_redis_trimmed_unacked", {
  description: "Pending stream entries found deleted (trimmed by retention) before their group acknowledged them",
  incremental: true
})

/** What the subscription paths share. */
export interface Context {
  readonly connection: RedisConnectionShape
  readonly topology: RedisTopologyShape
  readonly now: () => number
}

interface LoopState {
  phase: "history" | "new" | "stopped"
  historyCursor: string
  claimCursor: string
  nextClaimAt: number
}

/** How long a closing member lets a read in flight complete, and waits before its last look at its pending entries. */
const closeSettle = Duration.millis(100)

const consumerName = (client: string): string => `${client}-${globalThis.crypto.randomUUID().slice(0, 13)}`

/** Subscribes a member of `opts.group` to a stream. */
export const subscribe = Effect.fn("RedisBroker.subscribe")(function*(
  ctx: Context,
  destination: string,
  opts: Broker.SubscribeOptions
): Effect.fn.Return<Broker.Subscription, Errors.SubscribeError, Scope.Scope> {
  const { client, redis, resolved } = ctx.connection
  const group = opts.group
  const prefetch = Math.max(1, opts.prefetch)
  const ackDeadline = Duration.toMillis(resolved.ackDeadline)
  const claimEvery = Duration.toMillis(resolved.claimInterval)
  const block = String(Math.max(1, Duration.toMillis(resolved.block)))
  const consumer = consumerName(resolved.options.clientName ?? "switchyard")
  const attributes = { "messaging.destination.name": destination, "messaging.consumer.group.name": group }
  const ensureGroup = ctx.topology.ensureGroup(destination, group, opts.startFrom)
  yield* ensureGroup
  yield* removeStaleConsumers(ctx, destination, group, ackDeadline)

  const queue = yield* DeliveryQueue.make<Delivery.RedisDelivery>({ capacity: prefetch })
  /** Delivered and not settled (queued or taken), by entry id. */
  const held = new Map<string, Delivery.RedisDelivery>()
  const roomFreed = yield* Queue.sliding<void>(1)
  const state: LoopState = { phase: "history", historyCursor: "0", claimCursor: "0-0", nextClaimAt: 0 }

  const forget = (entryId: string) => {
    held.delete(entryId)
    Queue.offerUnsafe(roomFreed, undefined)
  }
  /** Marks entries idle so that they become claimable `afterMillis` from now. */
  const markIdle = (entryIds: ReadonlyArray<string>, afterMillis: number) =>
    entryIds.length === 0 ? Effect.void : redis.send(
      "XCLAIM",
      destination,
      group,
      consumer,
      "0",
      ...entryIds,
      "IDLE",
      // idle past the deadline: claimable now; else claimable once `afterMillis` more have passed
      String(afterMillis === 0 ? 2 * ackDeadline : Math.max(0, ackDeadline - afterMillis)),
      "JUSTID"
    ).pipe(Effect.asVoid)
  const handlers: Delivery.Handlers = {
    // forgotten also when the ack fails: no longer kept alive, the entry is redelivered (claimed after the
    // deadline, or re-read from this member's pending list after a reconnect)
    ack: (entryId: string) =>
      redis.send("XACK", destination, group, entryId).pipe(
        Effect.mapError((e) => ackError(destination, e, "XACK")),
        Effect.ensuring(Effect.sync(() => forget(entryId))),
        Effect.asVoid
      ),
    // forgotten first: the keep-alive must not reset the idle time this sets
    release: Effect.fnUntraced(function*(entryId: string, afterMillis: number) {
      forget(entryId)
      yield* markIdle([entryId], afterMillis).pipe(Effect.mapError((e) => ackError(destination, e, "XCLAIM IDLE")))
      if (afterMillis === 0) state.nextClaimAt = 0
    }),
    ackDeadlineMillis: ackDeadline,
    deliveryLimit: resolved.deliveryLimit
  }
  const handBack = (entryIds: ReadonlyArray<string>) =>
    Effect.sync(() => entryIds.forEach(forget)).pipe(
      Effect.andThen(markIdle(entryIds, 0)),
      Effect.catchCause((cause) => Effect.logWarning("redis: handing entries back failed; they are claimable after the ack deadline", cause))
    )
  const reportTrimmed = (entryIds: ReadonlyArray<string>) =>
    entryIds.length === 0 ? Effect.void : Effect.all([
      Metric.update(Metric.withAttributes(trimmedUnacked, attributes), entryIds.length),
      Effect.logWarning("redis: pending entries were trimmed from the stream before the group acknowledged them", {
        ...attributes,
        entries: entryIds.slice(0, 20),
        count: entryIds.length
      })
    ], { discard: true })

  /** Hands entries to the queue; what it refuses (ended or full) goes back at once. */
  const deliver = Effect.fnUntraced(function*(entries: ReadonlyArray<RawEntry>, attempts: ReadonlyMap<string, number>) {
    const refused: Array<string> = []
    const deleted: Array<string> = []
    for (const entry of entries) {
      if (held.has(entry.id)) continue
      if (entry.fields === undefined) {
        deleted.push(entry.id)
        continue
      }
      const envelope = fromEntry(destination, entry.id, entry.fields, attempts.get(entry.id) ?? 1, ctx.now)
      const delivery = Delivery.make(destination, entry.id, envelope, handlers)
      held.set(entry.id, delivery)
      if (!queue.offer(delivery)) {
        held.delete(entry.id)
        refused.push(entry.id)
      }
    }
    if (deleted.length > 0) {
      // a history read returns trimmed entries without fields: they leave the pending list here
      yield* redis.send("XACK", destination, group, ...deleted).pipe(Effect.ignore)
      yield* reportTrimmed(deleted)
    }
    yield* handBack(refused)
  })

  /** Delivery counts of entries this member holds in the group's pending list (one pipelined XPENDING each). */
  const countsOf = (entries: ReadonlyArray<RawEntry>) =>
    Effect.promise(() =>
      Promise.all(entries.map((entry) =>
        client.sendCommand<unknown>(["XPENDING", destination, group, entry.id, entry.id, "1", consumer]).then(
          (reply) => [entry.id, Replies.deliveryCount(reply) ?? 1] as const,
          () => [entry.id, 1] as const
        )
      ))
    ).pipe(Effect.map((pairs) => new Map(pairs)))

  const readHistory = (connection: Client, room: number) =>
    Effect.tryPromise(() =>
      connection.sendCommand<unknown>(
        ["XREADGROUP", "GROUP", group, consumer, "COUNT", String(room), "STREAMS", destination, state.historyCursor],
        { typeMapping: Replies.bufferReplies }
      )
    ).pipe(
      Effect.map(Replies.readGroup),
      Effect.flatMap((entries) => {
        if (entries.length === 0) {
          if (state.phase === "history") state.phase = "new"
          return Effect.void
        }
        state.historyCursor = entries[entries.length - 1]!.id
        return Effect.flatMap(countsOf(entries), (counts) => deliver(entries, counts))
      })
    )

  const claim = (room: number, now: number) =>
    Effect.tryPromise(() =>
      client.sendCommand<unknown>(
        ["XAUTOCLAIM", destination, group, consumer, String(ackDeadline), state.claimCursor, "COUNT", String(room)],
        { typeMapping: Replies.bufferReplies }
      )
    ).pipe(
      Effect.map(Replies.autoClaim),
      Effect.flatMap((reply) => {
        state.claimCursor = reply.cursor
        // a full page may have more behind it: look again at once; else after the interval
        state.nextClaimAt = reply.cursor !== "0-0" && reply.claimed.length >= room ? 0 : now + claimEvery
        return Effect.andThen(
          reportTrimmed(reply.deleted),
          reply.claimed.length === 0 ? Effect.void : Effect.flatMap(countsOf(reply.claimed), (counts) => deliver(reply.claimed, counts))
        )
      })
    )

  const readNew = (connection: Client, room: number) =>
    Effect.tryPromise(() =>
      connection.sendCommand<unknown>(
        ["XREADGROUP", "GROUP", group, consumer, "COUNT", String(room), "BLOCK", block, "STREAMS", destination, ">"],
        { typeMapping: Replies.bufferReplies }
      )
    ).pipe(Effect.map(Replies.readGroup), Effect.flatMap((entries) => deliver(entries, new Map())))

  // the dedicated connection lives in a scope of its own, closed first at close (a blocked read is cancelled
  // with it, and the supervisor does not reconnect what the close ended)
  const connectionScope = yield* Scope.fork(yield* Effect.scope)
  const supervised = yield* Supervisor.make({
    acquire: ctx.connection.dedicated,
    lost: (connection) =>
      Effect.race(
        Effect.callback<void>((resume) => {
          connection.once("end", () => resume(Effect.void))
          connection.once("error", () => resume(Effect.void))
        }),
        // node-redis without a reconnect strategy does not always say `end` when the socket drops
        Effect.void.pipe(Effect.repeat({ schedule: Schedule.spaced("250 millis"), until: () => !connection.isOpen }))
      ),
    schedule: resolved.reconnectSchedule,
    onReacquired: (_, generation) =>
      Effect.andThen(
        Effect.sync(() => resumeHistory(state)),
        Effect.logInfo("redis: subscription reconnected; resuming its pending entries", { ...attributes, generation })
      )
  }).pipe(Effect.mapError((e) => subscribeError(destination, e, "connect")), Scope.provide(connectionScope))

  /** Completed when the loop has seen the stop: no read of it is in flight any more. */
  const parked = yield* Deferred.make<void>()
  const step = Effect.gen(function*() {
    if (state.phase === "stopped") return yield* Effect.andThen(Deferred.succeed(parked, undefined), Effect.never)
    const room = prefetch - held.size
    if (room <= 0) return yield* Queue.take(roomFreed)
    const connection = yield* supervised.current
    if (state.phase === "history") return yield* readHistory(connection, room)
    const now = yield* Clock.currentTimeMillis
    if (now >= state.nextClaimAt) return yield* claim(room, now)
    return yield* readNew(connection, room)
  })

  const recover = (cause: Cause.Cause<unknown>) =>
    Effect.gen(function*() {
      const error = Cause.squash(cause)
      if (isNoGroup(error)) {
        // the stream or the group is gone (deleted, or a server restart without persistence): declare again
        yield* Effect.logWarning("redis: consumer group missing; creating it again", attributes)
        yield* ctx.topology.forgetAll
        yield* ensureGroup.pipe(Effect.ignore)
      } else {
        yield* Effect.logDebug("redis: read failed; retrying", { ...attributes, error: String(error) })
      }
      resumeHistory(state)
      yield* Effect.sleep("100 millis")
    })

  const loop = yield* step.pipe(
    Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : recover(cause)),
    Effect.forever,
    Effect.forkScoped
  )

  // the Supervisor gave up reconnecting: the subscription fails (the Consumer restarts it if retryable)
  yield* Deferred.await(supervised.failure).pipe(
    Effect.catch((e) => Effect.sync(() => queue.fail(subscribeError(destination, e, "reconnect gave up")))),
    Effect.forkScoped
  )

  // keep what this member holds from being claimed by others while it is handled
  const keepAliveEvery = Math.max(50, Math.floor(ackDeadline / 3))
  const keepAlive = yield* Effect.suspend(() => {
    const ids = [...held.keys()]
    return ids.length === 0
      ? Effect.void
      : redis.send("XCLAIM", destination, group, consumer, "0", ...ids, "JUSTID").pipe(Effect.ignore)
  }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(keepAliveEvery))), Effect.forkScoped)

  const handBackPending = Effect.flatMap(
    pendingHere(ctx, destination, group, consumer),
    (ids) => handBack([...new Set([...held.keys(), ...ids])])
  )
  // a read in flight when intake stops still completes: what it brings is refused by the ended queue and handed back
  const stopIntake = Effect.sync(() => {
    state.phase = "stopped"
    queue.end()
  })
  yield* Effect.addFinalizer(() =>
    stopIntake.pipe(
      // a read in flight completes (what it brings is refused and handed back), unless it is blocked waiting
      Effect.andThen(Deferred.await(parked).pipe(Effect.timeout(closeSettle), Effect.ignore)),
      Effect.andThen(Fiber.interruptAll([loop, keepAlive])),
      // a blocked read is cancelled with its connection
      Effect.andThen(Scope.close(connectionScope, Exit.void)),
      Effect.andThen(handBackPending),
      // the server may serve a read it had already received after the socket closed: look once more
      Effect.andThen(Effect.sleep(closeSettle)),
      Effect.andThen(handBackPending),
      Effect.andThen(deleteIfIdle(ctx, destination, group, consumer))
    )
  )
  return {
    deliveries: queue.stream,
    stopIntake: stopIntake.pipe(
      Effect.andThen(queue.drain),
      Effect.flatMap((drained) => handBack(drained.map((d) => d.entryId)))
    )
  }
}, (effect, _ctx, destination) => Effect.annotateLogs(effect, { broker: "redis", destination }))

const resumeHistory = (state: LoopState): void => {
  if (state.phase === "stopped") return
  state.phase = "history"
  state.historyCursor = "0"
}

/** The ids of every entry pending for this member. */
const pendingHere = (ctx: Context, stream: string, group: string, consumer: string) =>
  ctx.connection.redis.send<unknown>("XPENDING", stream, group, "-", "+", "100000", consumer).pipe(
    Effect.map((reply) =>
      Array.isArray(reply)
        ? reply.flatMap((row) => Array.isArray(row) && typeof row[0] === "string" ? [row[0]] : [])
        : []
    ),
    Effect.orElseSucceed((): ReadonlyArray<string> => [])
  )

/** Deletes this member's consumer name when it holds nothing pending (nothing is lost by deleting it). */
const deleteIfIdle = (ctx: Context, stream: string, group: string, consumer: string) =>
  ctx.connection.redis.send<unknown>("XPENDING", stream, group, "-", "+", "1", consumer).pipe(
    Effect.flatMap((reply) =>
      Array.isArray(reply) && reply.length === 0
        ? ctx.connection.redis.send("XGROUP", "DELCONSUMER", stream, group, consumer)
        : Effect.void
    ),
    Effect.ignore
  )

/** Deletes the group's consumer names that hold nothing pending and were idle past the deadline. */
const removeStaleConsumers = (ctx: Context, stream: string, group: string, ackDeadline: number) =>
  Effect.tryPromise(() =>
    ctx.connection.client.sendCommand<unknown>(["XINFO", "CONSUMERS", stream, group], { typeMapping: Replies.bufferReplies })
  ).pipe(
    Effect.map((reply) => Replies.consumers(reply)),
    Effect.flatMap((consumers) =>
      Effect.forEach(
        consumers.filter((c) => c.pending === 0 && c.idle > ackDeadline),
        (c) => ctx.connection.redis.send("XGROUP", "DELCONSUMER", stream, group, c.name),
        { discard: true }
      )
    ),
    Effect.ignore
  )
