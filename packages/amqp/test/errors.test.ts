/**
 * Failures surface at once, with the broker's reason and a `kind` classified from amqplib's codes. Each
 * layer gets a 20 s connect timeout and each test a 10 s limit: an error that waited for the connect
 * timeout cannot pass.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { Effect, Layer, Redacted } from "effect"
import { AmqpBroker } from "../src/index.ts"
import { message, options, rawChannel, unique } from "./helpers.ts"

const slow = { ...options, connectTimeout: "20 seconds" } as const

describe("connection failures surface at once with a kind", () => {
  it.live("a virtual host that does not exist: NotFound, naming the vhost", () =>
    Effect.gen(function*() {
      const vhost = unique("no-such-vhost")
      const error = yield* Effect.flip(Layer.build(AmqpBroker.layer({ ...slow, vhost })))
      assert.strictEqual(error._tag, "ConnectionError")
      assert.strictEqual(error.kind, "NotFound")
      assert.isFalse(error.isRetryable)
      assert.include(error.reason.message, "530")
      assert.strictEqual(error.reason.code, 530)
      assert.include(error.reason.message, vhost)
      assert.notInclude(error.reason.message, "timed out")
    }), 10_000)

  it.live("bad credentials: AuthenticationFailed with RabbitMQ's ACCESS_REFUSED text", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(AmqpBroker.layer({ ...slow, password: Redacted.make("wrong-4711") })))
      assert.strictEqual(error.kind, "AuthenticationFailed")
      assert.isFalse(error.isRetryable)
      assert.include(error.reason.message, "ACCESS_REFUSED - Login was refused")
      assert.strictEqual(error.reason.code, 403)
      assert.notInclude(JSON.stringify(error), "wrong-4711")
    }), 10_000)

  it.live("a refused port: Unreachable with ECONNREFUSED", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(AmqpBroker.layer({ ...slow, port: 1 })))
      assert.strictEqual(error.kind, "Unreachable")
      assert.include(error.reason.message, "ECONNREFUSED")
      assert.strictEqual(error.reason.code, "ECONNREFUSED")
      assert.notInclude(error.reason.message, "timed out")
    }), 10_000)

  it.live("a declared topology that conflicts with the broker's: TopologyConflict with the 406 text", () =>
    Effect.gen(function*() {
      const name = unique("conflict")
      const channel = yield* rawChannel
      yield* Effect.promise(() => channel.assertExchange(name, "fanout", { durable: false, autoDelete: true }))
      yield* Effect.promise(() => channel.assertQueue(`${name}.keep`, { exclusive: true }))
      yield* Effect.promise(() => channel.bindQueue(`${name}.keep`, name, ""))
      const error = yield* Effect.flip(
        Layer.build(AmqpBroker.layer({ ...slow, topology: { exchanges: [{ name, type: "topic" }] } }))
      )
      assert.strictEqual(error.kind, "TopologyConflict")
      assert.isFalse(error.isRetryable)
      assert.include(error.reason.message, "PRECONDITION_FAILED - inequivalent arg")
      assert.strictEqual(error.reason.code, 406)
    }), 10_000)
})

layer(AmqpBroker.layer(slow), { excludeTestServices: true, timeout: "30 seconds" })("publish failures have a kind", (it) => {
  it.effect("a destination that exists with another type: PublishError TopologyConflict, not retried", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("conflict-publish")
      const channel = yield* rawChannel
      yield* Effect.promise(() => channel.assertExchange(destination, "fanout", { durable: false, autoDelete: true }))
      yield* Effect.promise(() => channel.assertQueue(`${destination}.keep`, { exclusive: true }))
      yield* Effect.promise(() => channel.bindQueue(`${destination}.keep`, destination, ""))
      const error = yield* Effect.flip(broker.publish(destination, [message("c-1", "x")]))
      assert.strictEqual(error._tag, "PublishError")
      assert.strictEqual(error.kind, "TopologyConflict")
      assert.isFalse(error.isRetryable)
      assert.include(error.reason.message, "inequivalent arg 'type'")
      assert.strictEqual(error.reason.code, 406)
    }), 10_000)

  it.effect("a header table amqplib cannot encode: PublishError TooLarge at once (not retried as a connection problem)", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = `${unique("too-large")}.dlq`
      const error = yield* Effect.flip(
        broker.publish(destination, [message("big-1", "x", { headers: { "x-big": "h".repeat(70_000) } })])
      )
      assert.strictEqual(error.kind, "TooLarge")
      assert.isFalse(error.isRetryable)
      assert.include(error.reason.message, "exceeds the 65536 byte encoding buffer")
      // the publisher is not blocked: the next publish goes through
      yield* broker.publish(destination, [message("ok-1", "x")])
    }), 10_000)
})
