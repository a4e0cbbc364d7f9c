/**
 * The in-memory consumer's cost per message, nothing else timed: `N` orders are published first, then
 * `Consumer.run` (concurrency `C`, ordering by key when above 1) handles them all; prints msg/s and CPU µs per
 * message of the consume phase. `TRACER=0` turns `References.TracerEnabled` off, `METRICS=0`
 * `Telemetry.PerMessageMetrics`. For profiles: `node --cpu-prof --import tsx bench/consume-only.ts`.
 *
 *   N=100000 TRACER=0 METRICS=0 node --import tsx bench/consume-only.ts
 */
import { Consumer, Publisher, Switchyard, Telemetry, Topic } from "@switchyard/core"
import { Deferred, Effect, Fiber, References } from "effect"
import { makeOrder, Order } from "./typed/spec.ts"

const n = Number(process.env["N"] ?? 50_000)
const concurrency = Number(process.env["C"] ?? 1)
const tracing = process.env["TRACER"] !== "0"
const metrics = process.env["METRICS"] !== "0"
const topic = Topic.make("orders", Order, { key: (o) => o.customer })

const program = Effect.gen(function*() {
  const values = Array.from({ length: n }, (_, i) => makeOrder(i))
  for (let i = 0; i < n; i += 1000) yield* Publisher.publishAll(topic, values.slice(i, i + 1000))
  const handled = { count: 0 }
  const done = yield* Deferred.make<void>()
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
