/**
 * Declare on first use after a reconnect: a private nats-server restarted loses its memory-storage streams,
 * and the broker forgets what it provisioned when the connection comes back, so the next use declares the
 * stream again (rather than answering from a cache that names a stream the server no longer has).
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { NatsBroker, NatsConnection, NatsTopology } from "../src/index.ts"
import { PrivateNatsServer } from "../src/testing/index.ts"
import { message, subscribeOptions, take, text, unique } from "./helpers.ts"

describe("JetStream provisioning across a reconnect", () => {
  it.live("a stream the restarted server lost is declared again on next use", () =>
    Effect.gen(function*() {
      const server = yield* PrivateNatsServer.make()
      const context = yield* Layer.build(NatsBroker.layer({
        connection: { servers: server.url, reconnect: { wait: "100 millis" } },
        defaultStream: { storage: "memory" }
      }))
      yield* Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const topology = yield* NatsTopology.NatsTopology
        const { statusChanges } = yield* NatsConnection.NatsConnection
        const destination = unique("sy.reprovision")
        yield* broker.publish(destination, [message("before")])
        const stream = yield* topology.streamFor(destination)
        const reconnected = yield* statusChanges.pipe(
          Stream.filter((s) => s.type === "reconnect"),
          Stream.take(1),
          Stream.runDrain,
          Effect.forkChild
        )
        yield* Effect.sleep("100 millis")
        yield* server.restart
        yield* Fiber.join(reconnected).pipe(Effect.timeout("15 seconds"))
        // The cache was forgotten: the stream is declared again, empty (memory storage did not survive).
        const again = yield* topology.streamFor(destination).pipe(
          Effect.flatMap((name) => Effect.tryPromise(() => topology.manager.streams.info(name))),
          Effect.retry({ times: 50, schedule: Schedule.spaced("200 millis") }),
          Effect.timeout("10 seconds")
        )
        assert.strictEqual(again.config.name, stream)
        assert.strictEqual(again.state.messages, 0)
        const sub = yield* broker.subscribe(destination, subscribeOptions(unique("g")))
        yield* broker.publish(destination, [message("after")])
        assert.deepStrictEqual((yield* take(sub, 1)).map(text), ["after"])
      }).pipe(Effect.provide(context))
    }).pipe(Effect.scoped), 60_000)
})
