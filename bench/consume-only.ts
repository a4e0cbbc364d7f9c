/**
 * The in-memory consumer's cost per message, nothing else timed: `N` orders are published first, then
 * `Consumer.run` (concurrency `C`, ordering by key when above 1) handles them all; prints msg/s and CPU µs per
 * message of the consume phase. `TRACER=0` turns `References.TracerEnabled` off, `METRICS=0`
 * `Telemetry.PerMessageMetrics`. `PROFILE=<file.cpuprofile>` writes a CPU profile of the consume phase only (`<file>.heapprofile`: allocations).
 *
 *   N=100000 TRACER=0 METRICS=0 node --import tsx bench/consume-only.ts
 */
import { Consumer, Publisher, Switchyard, Telemetry, Topic } from "@switchyard/core"
import { Deferred, Effect, Fiber, References } from "effect"
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import { makeOrder, Order } from "./typed/spec.ts"

const n = Number(process.env["N"] ?? 50_000)
const concurrency = Number(process.env["C"] ?? 1)
const tracing = process.env["TRACER"] !== "0"
const metrics = process.env["METRICS"] !== "0"
const profilePath = process.env["PROFILE"]
const session = profilePath === undefined ? undefined : new Session()
// a `.heapprofile` path: an allocation profile (sampling heap profiler) instead of a CPU profile
const heapProfile = profilePath?.endsWith(".heapprofile") === true
const startProfile = Effect.promise(async () => {
  if (session === undefined) return
  session.connect()
  if (heapProfile) {
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    })
  } else {
    await session.post("Profiler.enable")
    await session.post("Profiler.start")
  }
})
const stopProfile = Effect.promise(async () => {
  if (session === undefined || profilePath === undefined) return
  const { profile } = heapProfile ? await session.post("HeapProfiler.stopSampling") : await session.post("Profiler.stop")
  fs.writeFileSync(profilePath, JSON.stringify(profile))
})
const topic = Topic.make("orders", Order, { key: (o) => o.customer })

const program = Effect.gen(function*() {
  const values = Array.from({ length: n }, (_, i) => makeOrder(i))
  for (let i = 0; i < n; i += 1000) yield* Publisher.publishAll(topic, values.slice(i, i + 1000))
  const handled = { count: 0 }
  const done = yield* Deferred.make<void>()
  yield* startProfile
  const started = performance.now()
  const cpu = process.cpuUsage()
  const consumer = yield* Effect.forkChild(Consumer.run(topic, () =>
    Effect.sync(() => {
      if (++handled.count === n) Deferred.doneUnsafe(done, Effect.void)
    }), {
    group: "g",
    concurrency,
    startFrom: "earliest",
    ...(concurrency > 1 ? { ordering: "key" as const } : {})
  }))
  yield* Deferred.await(done)
  const used = process.cpuUsage(cpu)
  const seconds = (performance.now() - started) / 1000
  yield* stopProfile
  yield* Effect.sync(() =>
    console.log(
      `consume c${concurrency} tracing=${tracing} metrics=${metrics}: ${Math.round(n / seconds)} msg/s, ` +
        `${((used.user + used.system) / n).toFixed(1)} µs CPU/msg`
    )
  )
  yield* Fiber.interrupt(consumer)
}).pipe(
  Effect.provide(Switchyard.layerMemory()),
  Effect.provideService(References.TracerEnabled, tracing),
  Effect.provideService(Telemetry.PerMessageMetrics, metrics)
)

Effect.runPromise(program)
