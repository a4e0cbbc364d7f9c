/**
 * Declare on first use: a group (and its stream) is created once per stream and group with `XGROUP CREATE …
 * MKSTREAM` at `0` (`startFrom: "earliest"`) or `$` (`"latest"`), through the kit's `Provisioner`
 * (concurrency-safe, failures not remembered); `BUSYGROUP` (it exists) counts as created. Invalidated when a
 * subscription finds its group missing (`NOGROUP`: the stream was deleted, or a server without persistence
 * restarted).
 */
import { Effect } from "effect"
import { type Broker, Errors } from "@switchyard/core"
import { Provisioner } from "@switchyard/core/adapter"
import type { Redis } from "effect/persistence"
import { reasonOf } from "./errors.ts"

/** A group of a stream, with where it starts when it is created. */
export interface GroupKey {
  readonly stream: string
  readonly group: string
  readonly startFrom: Broker.StartFrom
}

const createError = (stream: string) => (cause: unknown) =>
  new Errors.SubscribeError({ destination: stream, reason: reasonOf(cause, "XGROUP CREATE"), cause })

/** The group provisioner on effect's `Redis` service. */
export const groups = (redis: Redis.Redis["Service"]): Effect.Effect<Provisioner.Provisioner<GroupKey, Errors.SubscribeError>> =>
  Provisioner.make({
    declare: (key: GroupKey) =>
      redis.send("XGROUP", "CREATE", key.stream, key.group, key.startFrom === "earliest" ? "0" : "$", "MKSTREAM").pipe(
        Effect.catchIf((error) => reasonOf(error).code === "BUSYGROUP", () => Effect.void),
        Effect.mapError(createError(key.stream)),
        Effect.asVoid
      ),
    identify: (key) => `${key.stream}\u0000${key.group}`
  })
