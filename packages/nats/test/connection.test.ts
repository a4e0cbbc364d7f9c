import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { nkeys } from "@nats-io/transport-node"
import { Cause, Config, ConfigProvider, Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { KeyValueStore } from "effect/persistence"
import { NatsBroker, NatsConnection, NatsKeyValueStore } from "../src/index.ts"
import { message, servers, subscribeOptions, take, unique } from "./helpers.ts"
import { PrivateNatsServer } from "../src/testing/index.ts"

describe("NATS connection", () => {
  it.live("layerConfig reads servers and secrets from Config (env), secrets stay redacted", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromEnv({
        env: { NATS_SERVERS: servers, NATS_NAME: "from-config", NATS_TOKEN: "t0p-s3cret" }
      })
      const options = yield* NatsConnection.config().parse(provider)
      assert.deepStrictEqual(options.servers, [servers])
      assert.strictEqual(options.name, "from-config")
      assert.strictEqual(options.auth?._tag, "Token")
      assert.notInclude(JSON.stringify(options), "t0p-s3cret")
      assert.notInclude(String(options.auth?._tag === "Token" ? options.auth.token : ""), "t0p-s3cret")
      // The shared server has no auth, so the token is ignored and the broker works end to end.
      const destination = unique("sy.config")
      yield* Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        yield* broker.publish(destination, [message("configured")])
        assert.strictEqual((yield* take(sub, 1)).length, 1)
      }).pipe(Effect.provide(NatsBroker.layerConfig(
        NatsBroker.config().pipe(Config.map((options) => ({ ...options, defaultStream: { storage: "memory" as const, maxAge: "15 minutes" } })))
      ).pipe(
        Layer.provide(ConfigProvider.layer(provider))
      )))
    }))

  it.live("an unreachable server fails the layer with a ConnectionError", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(NatsBroker.layer({
        connection: { servers: "nats://127.0.0.1:1", connectTimeout: "2 seconds", reconnect: { maxAttempts: 0 } }
      })).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(error._tag, "ConnectionError")
    }))

  it.live("token auth with a Redacted secret; status changes are observable across a restart", () =>
    Effect.gen(function*() {
      const server = PrivateNatsServer.handle({ token: "s3cr3t-t0ken" })
      const { url } = yield* server.start
      const wrong = yield* NatsConnection.make({
        servers: url,
        auth: { _tag: "Token", token: Redacted.make("wrong") },
        reconnect: { maxAttempts: 0 }
      }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(wrong._tag, "ConnectionError")
      assert.notInclude(wrong.message, "s3cr3t")
      const { statusChanges } = yield* NatsConnection.make({
        servers: url,
        auth: { _tag: "Token", token: Redacted.make("s3cr3t-t0ken") },
        reconnect: { wait: "100 millis" }
      })
      const seen = yield* statusChanges.pipe(
        Stream.map((s) => s.type),
        Stream.filter((t) => t === "disconnect" || t === "reconnect"),
        Stream.take(2),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* Effect.sleep("100 millis")
      yield* server.restart
      assert.deepStrictEqual(yield* Fiber.join(seen).pipe(Effect.timeout("15 seconds")), ["disconnect", "reconnect"])
    }))

  it.live("user/password and nkey auth against real servers", () =>
    Effect.gen(function*() {
      const userServer = PrivateNatsServer.handle({ user: { name: "svc", password: "pa55-w0rd" } })
      const { url: userUrl } = yield* userServer.start
      const ok = yield* NatsConnection.make({
        servers: userUrl,
        username: "svc",
        password: Redacted.make("pa55-w0rd")
      })
      assert.isFalse(ok.nc.isClosed())
      const denied = yield* NatsConnection.make({
        servers: userUrl,
        username: "svc",
        password: Redacted.make("nope"),
        reconnect: { maxAttempts: 0 }
      }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(denied._tag, "ConnectionError")

      const user = nkeys.createUser()
      const seed = new TextDecoder().decode(user.getSeed())
      const nkeyServer = PrivateNatsServer.handle({
        config: `authorization { users = [ { nkey: "${user.getPublicKey()}" } ] }`
      })
      const { url: nkeyUrl } = yield* nkeyServer.start
      const viaNkey = yield* NatsConnection.make({ servers: nkeyUrl, auth: { _tag: "NKey", seed: Redacted.make(seed) } })
      const rtt = yield* Effect.promise(() => viaNkey.nc.rtt())
      assert.isAtLeast(rtt, 0)
      const other = new TextDecoder().decode(nkeys.createUser().getSeed())
      const rejected = yield* NatsConnection.make({
        servers: nkeyUrl,
        auth: { _tag: "NKey", seed: Redacted.make(other) },
        reconnect: { maxAttempts: 0 }
      }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(rejected._tag, "ConnectionError")
      assert.notInclude(rejected.message, other)
    }))

  it.live("a password in the server URL never appears in the ConnectionError, its fields, its cause or the printed Cause", () =>
    Effect.gen(function*() {
      const server = PrivateNatsServer.handle({ user: { name: "svc", password: "pa55-w0rd" } })
      const { url } = yield* server.start
      const secret = "wr0ng-s3cret-pw"
      const withCredentials = url.replace("nats://", `nats://svc:${secret}@`)
      const error = yield* NatsConnection.make({ servers: withCredentials, reconnect: { maxAttempts: 0 } }).pipe(
        Effect.scoped,
        Effect.flip
      )
      assert.strictEqual(error._tag, "ConnectionError")
      assert.strictEqual(error.kind, "AuthenticationFailed")
      assert.isFalse(error.isRetryable)
      assert.include(error.broker, "svc:<redacted>@127.0.0.1")
      const printed = [
        error.message,
        error.broker,
        error.reason.message,
        String(error.cause),
        error.cause instanceof Error ? error.cause.stack ?? "" : "",
        JSON.stringify(error),
        Cause.pretty(Cause.fail(error))
      ]
      for (const text of printed) assert.notInclude(text, secret)
      // A token in the user part is a secret too.
      const token = yield* NatsConnection.make({
        servers: url.replace("nats://", "nats://t0ken-in-url@"),
        reconnect: { maxAttempts: 0 }
      }).pipe(Effect.scoped, Effect.flip)
      assert.notInclude(`${token.message} ${token.broker} ${String(token.cause)} ${Cause.pretty(Cause.fail(token))}`, "t0ken-in-url")
    }))

  it.live("KeyValueStore on a JetStream KV bucket", () =>
    Effect.gen(function*() {
      const kv = yield* KeyValueStore.KeyValueStore
      const key = `order:${unique("k")}/with spaces & ünïcode`
      assert.isUndefined(yield* kv.get(key))
      yield* kv.set(key, "processed")
      assert.strictEqual(yield* kv.get(key), "processed")
      assert.isTrue(yield* kv.has(key))
      yield* kv.set(`${key}-bytes`, new Uint8Array([1, 2, 3]))
      assert.deepStrictEqual(Array.from((yield* kv.getUint8Array(`${key}-bytes`)) ?? []), [1, 2, 3])
      assert.includeMembers([...(yield* kv.keys)], [key, `${key}-bytes`])
      yield* kv.remove(key)
      assert.isUndefined(yield* kv.get(key))
      assert.isFalse(yield* kv.has(key))
      yield* kv.clear
      assert.strictEqual(yield* kv.size, 0)
    }).pipe(Effect.provide(
      NatsKeyValueStore.layer(unique("sy-kv"), { storage: "memory" }).pipe(
        Layer.provide(NatsConnection.layer({ servers }))
      )
    )))
})
