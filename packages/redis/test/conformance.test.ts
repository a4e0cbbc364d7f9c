/**
 * The shared conformance suite against a private redis-server (AOF on, `appendfsync always`), so that the
 * broker-restart case (two restarts while 10,000 messages flow from parallel publishers) touches no other
 * test's server.
 */
import { Conformance } from "@switchyard/core/testing"
import { Context, Effect, Layer } from "effect"
import { RedisBroker } from "../src/index.ts"
import { RedisServer } from "../src/testing/index.ts"
import { testOptions } from "./helpers.ts"

class TestServer extends Context.Service<TestServer, RedisServer.RedisServer>()("test/TestServer") {}

let server: RedisServer.RedisServer | undefined

const serverLayer = Layer.effect(
  TestServer,
  RedisServer.start().pipe(Effect.tap((s) => Effect.sync(() => (server = s))), Effect.orDie)
)

const brokerLayer = Layer.unwrap(Effect.map(TestServer, (s) => RedisBroker.layer(testOptions({ url: s.url })))).pipe(
  Layer.provide(serverLayer)
)

Conformance.suite({
  name: "redis",
  layer: brokerLayer,
  capabilities: RedisBroker.capabilities,
  restart: Effect.suspend(() => (server === undefined ? Effect.die("no server") : server.restart))
})
