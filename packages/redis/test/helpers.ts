import { Effect } from "effect"
import { TestKit } from "@switchyard/core/testing"
import { createClient } from "redis"
import { RedisBroker } from "../src/index.ts"

/** The shared test server (keeps nothing on disk); `REDIS_URL` overrides it. */
export const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

/** Fast timings for tests. */
export const testOptions = (extra: Partial<RedisBroker.Options> = {}): RedisBroker.Options => ({
  url,
  ackDeadline: "2 seconds",
  claimInterval: "200 millis",
  block: "200 millis",
  connectTimeout: "5 seconds",
  ...extra
})

export const testLayer = (extra: Partial<RedisBroker.Options> = {}) => RedisBroker.layer(testOptions(extra))

export const unique = (label: string): string => TestKit.uniqueName(`sy-redis-${label}`)


/** A raw node-redis client (a foreign producer), closed with the scope. */
export const rawClient = (at: string = url) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = createClient({ url: at })
      client.on("error", () => undefined)
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.close().catch(() => undefined))
  )

export type RawClient = Effect.Success<ReturnType<typeof rawClient>>
