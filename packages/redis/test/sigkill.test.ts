/**
 * SIGKILL of one of two member processes (`fixtures/worker.ts` under tsx): the killed member held its
 * prefetch unacknowledged; the survivor claims those entries once they are idle past the ack deadline
 * (`XAUTOCLAIM`), with a grown attempt, and the group ends with nothing pending.
 */
import * as Path from "node:path"
import { assert, layer } from "@effect/vitest"
import { Broker, Envelope } from "@switchyard/core"
import { Effect } from "effect"
import { RedisTopology } from "../src/index.ts"
import { spawnMember, waitUntil } from "../../../test/support/workerProcess.ts"
import { testLayer, unique } from "./helpers.ts"

const worker = Path.join(import.meta.dirname, "fixtures", "worker.ts")

const startWorker = (destination: string, group: string, mode: "ack" | "hold", prefetch: number) =>
  spawnMember(worker, { DESTINATION: destination, GROUP: group, MODE: mode, PREFETCH: String(prefetch) })

layer(testLayer(), { excludeTestServices: true, timeout: "30 seconds" })("redis: member processes", (it) => {
  it.effect("SIGKILL of a member holding its prefetch: the other member claims its pending entries, nothing is lost", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const topology = yield* RedisTopology.RedisTopology
      const destination = unique("sigkill")
      const group = "workers"
      const holder = yield* startWorker(destination, group, "hold", 40)
      yield* waitUntil(() => holder.ready(), "30 seconds", "the holder subscribed")
      const total = 100
      const ids = Array.from({ length: total }, (_, i) => `m-${i}`)
      yield* broker.publish(destination, ids.map((id) => Envelope.outgoing(new TextEncoder().encode(id), { id })))
      yield* waitUntil(() => holder.got.size >= 40, "20 seconds", "the holder got 40 entries")
      const survivor = yield* startWorker(destination, group, "ack", 20)
      yield* waitUntil(() => survivor.ready() && survivor.acked.size >= total - 40, "30 seconds", "the survivor acked the rest")
      const held = [...holder.got.keys()]
      assert.strictEqual(held.length, 40, "the holder took exactly its prefetch")
      assert.isFalse(held.some((id) => survivor.got.has(id)), "the survivor took entries the live holder held")
      holder.process.kill("SIGKILL")
      yield* waitUntil(() => ids.every((id) => survivor.acked.has(id)), "30 seconds", "the survivor acked every entry")
      assert.strictEqual(survivor.acked.size, total)
      for (const id of held) {
        const attempts = survivor.got.get(id) ?? []
        assert.isAtLeast(attempts[0] ?? 0, 2, `${id} was claimed without a grown attempt`)
      }
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* topology.pending(destination, group), 0)
      yield* topology.deleteStream(destination)
    }), { timeout: 90_000 })
})
