/**
 * `Broker.serverInfo` (`INFO server`: version, mode, persistence) and `Broker.lag` (`XINFO GROUPS`: the
 * group's `lag`, entries not yet delivered, plus its `pending`, delivered and unacknowledged).
 */
import { Effect } from "effect"
import type { Broker, Errors } from "@switchyard/core"
import type { RedisConnectionShape } from "../RedisConnection.ts"
import { subscribeError } from "./errors.ts"
import * as Replies from "./replies.ts"

const infoFields = (info: string): ReadonlyMap<string, string> =>
  new Map(info.split(/\r?\n/).filter((line) => line.includes(":")).map((line) => {
    const at = line.indexOf(":")
    return [line.slice(0, at), line.slice(at + 1)] as const
  }))

export const serverInfo = (connection: RedisConnectionShape): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.all([
    connection.redis.send<unknown>("INFO", "server"),
    connection.redis.send<unknown>("INFO", "persistence")
  ]).pipe(
    Effect.map(([server, persistence]) => {
      const fields = infoFields(`${Replies.string(server) ?? ""}\n${Replies.string(persistence) ?? ""}`)
      return {
        product: "Redis",
        version: fields.get("redis_version") ?? "unknown",
        details: {
          address: connection.resolved.address,
          mode: fields.get("redis_mode") ?? "unknown",
          aof: fields.get("aof_enabled") === "1" ? "on" : "off"
        }
      }
    }),
    Effect.mapError((e) => subscribeError("redis", e, "INFO"))
  )

export const lag = (connection: RedisConnectionShape) =>
(destination: string, group: string): Effect.Effect<number, Errors.SubscribeError> =>
  Effect.tryPromise({
    try: () => connection.client.sendCommand<unknown>(["XINFO", "GROUPS", destination], { typeMapping: Replies.bufferReplies }),
    catch: (e) => subscribeError(destination, e, "XINFO GROUPS")
  }).pipe(
    Effect.map((reply) => {
      const row = Replies.rows(reply).find((r) => Replies.textField(r, "name") === group)
      if (row === undefined) return 0
      return Replies.integer(row.get("lag")) + Replies.integer(row.get("pending"))
    })
  )
