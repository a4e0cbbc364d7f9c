/**
 * SIGKILL of one of two member processes (`fixtures/worker.ts` under tsx): the killed member held its
 * prefetch unacknowledged; the survivor claims those entries once they are idle past the ack deadline
 * (`XAUTOCLAIM`), with a grown attempt, and the group ends with nothing pending.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Path from "node:path"
import { assert, layer } from "@effect/vitest"
import { Broker, Envelope } from "@switchyard/core"
import { Effect, Schedule } from "effect"
import { RedisTopology } from "../src/index.ts"
import { testLayer, unique } from "./helpers.ts"

interface Worker {
  readonly process: ChildProcess
  readonly got: Map<string, Array<number>>
  readonly acked: Set<string>
  readonly ready: { value: string }
}

const startWorker = (destination: string, group: string, mode: "ack" | "hold", prefetch: number) =>
  Effect.acquireRelease(
    Effect.sync((): Worker => {
      const child = spawn(process.execPath, ["--import", "tsx", Path.join(import.meta.dirname, "fixtures", "worker.ts")], {
        env: { ...process.env, DESTINATION: destination, GROUP: group, MODE: mode, PREFETCH: String(prefetch) },
        stdio: ["ignore", "pipe", "inherit"]
      })
      const worker: Worker = { process: child, got: new Map(), acked: new Set(), ready: { value: "no" } }
      let buffer = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8")
        const lines = buffer.split("\n")
        buffer = lines.pop() ?? ""
        for (const line of lines) {
          const [word, id, attempt] = line.split(" ")
          if (word === "ready") worker.ready.value = "yes"
          else if (word === "got" && id !== undefined) worker.got.set(id, [...(worker.got.get(id) ?? []), Number(attempt)])
          else if (word === "acked" && id !== undefined) worker.acked.add(id)
        }
      })
      return worker
    }),
    (worker) => Effect.sync(() => worker.process.kill("SIGKILL"))
  )

const waitUntil = (condition: () => boolean, timeout: import("effect").Duration.Input) =>
  Effect.void.pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: condition }), Effect.timeout(timeout))

layer(testLayer(), { excludeTestServices: true, timeout: "30 seconds" })("redis: member processes", (it) => {
  it.effect("SIGKILL of a member holding its prefetch: the other member claims its pending entries, nothing is lost", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const topology = yield* RedisTopology.RedisTopology
      const destination = unique("sigkill")
      const group = "workers"
      const holder = yield* startWorker(destination, group, "hold", 40)
      yield* waitUntil(() => holder.ready.value === "yes", "30 seconds")
      const total = 100
      const ids = Array.from({ length: total }, (_, i) => `m-${i}`)
      yield* broker.publish(destination, ids.map((id) => Envelope.outgoing(new TextEncoder().encode(id), { id })))
      yield* waitUntil(() => holder.got.size >= 40, "20 seconds")
      const survivor = yield* startWorker(destination, group, "ack", 20)
      yield* waitUntil(() => survivor.ready.value === "yes" && survivor.acked.size >= total - 40, "30 seconds")
      const held = [...holder.got.keys()]
      assert.strictEqual(held.length, 40, "the holder took exactly its prefetch")
      assert.isFalse(held.some((id) => survivor.got.has(id)), "the survivor took entries the live holder held")
      holder.process.kill("SIGKILL")
      yield* waitUntil(() => ids.every((id) => survivor.acked.has(id)), "30 seconds")
      assert.strictEqual(survivor.acked.size, total)
      for (const id of held) {
        const attempts = survivor.got.get(id) ?? []
        assert.isAtLeast(attempts[0] ?? 0, 2, `${id} was claimed without a grown attempt`)
      }
      yield* waitUntil(() => false, "300 millis").pipe(Effect.ignore)
      assert.strictEqual(yield* topology.pending(destination, group), 0)
      yield* topology.deleteStream(destination)
    }), { timeout: 90_000 })
})
