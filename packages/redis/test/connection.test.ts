/**
 * Connecting: a closed port fails with `Unreachable`, a wrong password (a private server with
 * `requirepass`) with `AuthenticationFailed`, the right one (`Redacted`) connects; bad options with `Invalid`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Redacted } from "effect"
import { Broker, type Errors } from "@switchyard/core"
import { RedisBroker } from "../src/index.ts"
import { RedisServer } from "../src/testing/index.ts"

const failureOf = <A>(layer: Layer.Layer<A, Errors.ConnectionError>) =>
  Effect.scoped(Layer.build(layer)).pipe(
    Effect.exit,
    Effect.map((exit) => (Exit.isFailure(exit) && exit.cause.reasons[0]?._tag === "Fail" ? exit.cause.reasons[0].error : undefined))
  )

describe("redis: connecting", () => {
  it.live("closed port: Unreachable; wrong password: AuthenticationFailed; right password: connected; bad options: Invalid", () =>
    Effect.scoped(Effect.gen(function*() {
      const closed = yield* failureOf(RedisBroker.layer({ host: "127.0.0.1", port: 1, connectTimeout: "2 seconds" }))
      assert.strictEqual(closed?.reason._tag, "Unreachable", closed?.message)
      const server = yield* RedisServer.start({ config: ["requirepass s3cret"] })
      const wrong = yield* failureOf(RedisBroker.layer({ url: server.url, password: Redacted.make("nope") }))
      assert.strictEqual(wrong?.reason._tag, "AuthenticationFailed", wrong?.message)
      assert.strictEqual(wrong?.reason.code, "WRONGPASS")
      assert.notInclude(wrong?.message ?? "", "nope")
      const info = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(RedisBroker.layer({ url: server.url, password: Redacted.make("s3cret") }))
        const broker = Context.get(context, Broker.Broker)
        return broker.serverInfo === undefined ? yield* Effect.die("no serverInfo") : yield* broker.serverInfo
      }))
      assert.strictEqual(info.product, "Redis")
      assert.strictEqual(info.details["aof"], "on")
      const invalid = yield* failureOf(RedisBroker.layer({ url: "http://127.0.0.1" }))
      assert.strictEqual(invalid?.reason._tag, "Invalid")
    })), { timeout: 60_000 })
})
