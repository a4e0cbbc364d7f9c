import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, layer } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { Effect } from "effect"
import { spawnWorker, waitUntil } from "../../../test/support/workerProcess.ts"
import { BrokerLive, message, unique } from "./helpers.ts"

interface Worker {
  readonly process: ChildProcess
  readonly handled: Set<string>
  readonly ready: () => boolean
}

/** A fixture process printing `ready` once subscribed and `handled <id>` per message. */
const startWorker = (destination: string, group: string) => {
  const handled = new Set<string>()
  const state = { ready: false }
  return Effect.map(
    spawnWorker(fileURLToPath(new URL("./fixtures/worker.ts", import.meta.url)), { DESTINATION: destination, GROUP: group }, (line) => {
      if (line === "ready") state.ready = true
      else if (line.startsWith("handled ")) handled.add(line.slice(8))
    }),
    (process): Worker => ({ process, handled, ready: () => state.ready })
  )
}

layer(BrokerLive, { excludeTestServices: true, timeout: "30 seconds" })("competing consumer processes", (it) => {
  it.effect("two processes in one group share the work, and SIGKILL of one loses nothing", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const destination = unique("sigkill")
      const group = "workers"
      const a = yield* startWorker(destination, group)
      const b = yield* startWorker(destination, group)
      yield* waitUntil(() => a.ready() && b.ready(), "30 seconds", "both workers subscribed")
      const total = 2000
      const ids = Array.from({ length: total }, (_, i) => `k-${i}`)
      for (let i = 0; i < total; i += 200) {
        yield* broker.publish(destination, ids.slice(i, i + 200).map((id) => message(id, id)))
      }
      yield* waitUntil(() => a.handled.size >= 150 && b.handled.size >= 150, "30 seconds", "both workers handled 150")
      a.process.kill("SIGKILL")
      const handledByAAtKill = a.handled.size
      yield* waitUntil(() => {
        for (const id of ids) if (!a.handled.has(id) && !b.handled.has(id)) return false
        return true
      }, "45 seconds", "every message was handled")
      assert.isAbove(handledByAAtKill, 0)
      assert.isAbove(b.handled.size, 0)
      const union = new Set([...a.handled, ...b.handled])
      assert.strictEqual(union.size, total)
      assert.isBelow(handledByAAtKill, total, "A was killed before the work was done")
    }), { timeout: 90_000 })
})
