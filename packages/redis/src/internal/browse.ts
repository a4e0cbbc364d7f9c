/**
 * `Broker.browse` (dead-letter operations): an operator's read of a stream from its first entry to the last
 * one at open (`XRANGE` pages of `prefetch`), outside any consumer group. `ack` deletes the entry (`XDEL`);
 * `nack` leaves it.
 */
import { Effect, Option, Stream, type Scope } from "effect"
import type { Broker, Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import type { RedisConnectionShape } from "../RedisConnection.ts"
import { fromEntry, type RawEntry } from "./envelope.ts"
import { ackError, subscribeError } from "./errors.ts"
import * as Replies from "./replies.ts"

const range = (connection: RedisConnectionShape, destination: string, from: string, to: string, count: number) =>
  Effect.tryPromise({
    try: () =>
      connection.client.sendCommand<unknown>(["XRANGE", destination, from, to, "COUNT", String(count)], {
        typeMapping: Replies.bufferReplies
      }),
    catch: (e) => subscribeError(destination, e, "XRANGE")
  }).pipe(Effect.map(Replies.entries))

/** The id right after `id` (XRANGE bounds are inclusive; `(` is exclusive). */
const after = (id: string): string => `(${id}`

/** Browses a stream. */
export const make = (connection: RedisConnectionShape, now: () => number) =>
(
  destination: string,
  options: Broker.BrowseOptions
): Effect.Effect<Broker.Browse, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const last = yield* Effect.tryPromise({
      try: () => connection.client.sendCommand<unknown>(["XREVRANGE", destination, "+", "-", "COUNT", "1"], { typeMapping: Replies.bufferReplies }),
      catch: (e) => subscribeError(destination, e, "XREVRANGE")
    }).pipe(Effect.map(Replies.entries))
    const retained = yield* connection.redis.send("XLEN", destination).pipe(
      Effect.map(Replies.integer),
      Effect.mapError((e) => subscribeError(destination, e, "XLEN"))
    )
    const end = last[0]?.id
    const page = Math.max(1, options.prefetch)
    const toDelivery = (entry: RawEntry): Broker.RawDelivery => {
      const settled = Settlement.make(destination, {
        ack: connection.redis.send("XDEL", destination, entry.id).pipe(
          Effect.mapError((e) => ackError(destination, e, "XDEL")),
          Effect.asVoid
        ),
        nack: () => Effect.void
      })
      return { envelope: fromEntry(destination, entry.id, entry.fields ?? [], 1, now), ack: settled.ack, nack: settled.nack }
    }
    const deliveries = end === undefined ? Stream.empty : Stream.paginate("-", (from: string) =>
      range(connection, destination, from, end, page).pipe(
        Effect.map((entries) => {
          const lastId = entries[entries.length - 1]?.id
          const next = lastId === undefined || lastId === end || entries.length < page ? Option.none() : Option.some(after(lastId))
          return [entries.map(toDelivery), next] as const
        })
      ))
    return { deliveries, retained }
  })
