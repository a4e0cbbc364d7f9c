/**
 * SIGKILL of a private redis-server (AOF, `appendfsync always`) while batches are published and consumed:
 * every confirmed entry is consumed after the server is started again on the same data, and the group's
 * pending list ends empty (the shared and the subscription connections reconnect by themselves).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { Broker, Envelope } from "@switchyard/core"
import { RedisBroker, RedisTopology } from "../src/index.ts"
import { RedisServer } from "../src/testing/index.ts"
import { testOptions, unique } from "./helpers.ts"

const encoder = new TextEncoder()

describe("redis: server SIGKILL", () => {
  it.live("a killed and restarted server keeps every confirmed entry; members resume", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.start()
      const context = yield* Layer.build(RedisBroker.layer(testOptions({ url: server.url })))
      const broker = Context.get(context, Broker.Broker)
      const topology = Context.get(context, RedisTopology.RedisTopology)
      const name = unique("killed")
      const sub = yield* broker.subscribe(name, { group: "g", prefetch: 200, startFrom: "earliest" })
      const received = new Set<string>()
      const reader = yield* sub.deliveries.pipe(
        Stream.runForEach((d) => d.ack.pipe(Effect.ignore, Effect.andThen(Effect.sync(() => received.add(d.envelope.id))))),
        Effect.forkChild
      )
      const confirmed = new Set<string>()
      const publisher = yield* Effect.forEach(Array.from({ length: 30 }, (_, b) => b), (b) => {
        const batch = Array.from({ length: 100 }, (_, i) => Envelope.outgoing(encoder.encode(`${b}-${i}`), { id: `k-${b}-${i}` }))
        return broker.publish(name, batch).pipe(
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 100 }))),
          Effect.tap(() => Effect.sync(() => batch.forEach((m) => confirmed.add(m.id)))),
          Effect.andThen(Effect.sleep("20 millis")),
          Effect.ignore
        )
      }, { discard: true }).pipe(Effect.forkChild)
      yield* Effect.sleep("200 millis")
      yield* server.kill
      yield* Effect.sleep("300 millis")
      yield* server.start
      yield* Fiber.join(publisher)
      yield* Effect.void.pipe(
        Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: () => [...confirmed].every((id) => received.has(id)) }),
        Effect.timeout(Duration.seconds(30)),
        Effect.ignore
      )
      yield* Fiber.interrupt(reader)
      const lost = [...confirmed].filter((id) => !received.has(id))
      assert.isAtLeast(confirmed.size, 1500)
      assert.deepStrictEqual(lost.slice(0, 10), [], `${lost.length} confirmed entries never consumed`)
      assert.strictEqual(yield* topology.pending(name, "g"), 0)
    })), { timeout: 90_000 })
})
