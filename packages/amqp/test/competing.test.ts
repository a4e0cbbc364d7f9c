import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, layer } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { Effect } from "effect"
import { BrokerLive, message, unique } from "./helpers.ts"

interface Worker {
  readonly process: ChildProcess
  readonly handled: Set<string>
  ready: boolean
}

const startWorker = (destination: string, group: string) =>
  Effect.acquireRelease(
    Effect.sync((): Worker => {
      const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./fixtures/worker.ts", import.meta.url))], {
        env: { ...process.env, DESTINATION: destination, GROUP: group },
        stdio: ["ignore", "pipe", "inherit"]
      })
      const worker: Worker = { process: child, handled: new Set(), ready: false }
      let buffer = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8")
        const lines = buffer.split("\n")
        buffer = lines.pop() ?? ""
        for (const line of lines) {
          if (line === "ready") worker.ready = true
          else if (line.startsWith("handled ")) worker.handled.add(line.slice(8))
        }
      })
      return worker
    }),
    (worker) => Effect.sync(() => worker.process.kill("SIGKILL"))
  )

const waitUntil = (condition: () => boolean, timeout: import("effect").Duration.Input) =>
  Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep("50 millis")
  }).pipe(Effect.timeout(timeout))

layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("competing consumer processes", (it) => {
  it.effect("two processes in one group share the work, and SIGKILL of one loses nothing", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("sigkill")
      const group = "workers"
      const a = yield* startWorker(destination, group)
      const b = yield* startWorker(destination, group)
      yield* waitUntil(() => a.ready && b.ready, "30 seconds")
      const total = 2000
      const ids = Array.from({ length: total }, (_, i) => `k-${i}`)
      for (let i = 0; i < total; i += 200) {
        yield* broker.publish(destination, ids.slice(i, i + 200).map((id) => message(id, id)))
      }
      yield* waitUntil(() => a.handled.size >= 150 && b.handled.size >= 150, "30 seconds")
      a.process.kill("SIGKILL")
      const handledByAAtKill = a.handled.size
      yield* waitUntil(() => {
        for (const id of ids) if (!a.handled.has(id) && !b.handled.has(id)) return false
        return true
      }, "45 seconds")
      assert.isAbove(handledByAAtKill, 0)
      assert.isAbove(b.handled.size, 0)
      const union = new Set([...a.handled, ...b.handled])
      assert.strictEqual(union.size, total)
      assert.isBelow(handledByAAtKill, total, "A was killed before the work was done")
    }), { timeout: 90_000 })
})
