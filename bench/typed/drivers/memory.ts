/**
 * In-memory broker. Switchyard: `Switchyard.layerMemory()` (partitions, group offsets, settlement).
 * Raw: a bare loop doing only the codec work of the same case — publish cases: JSON.stringify to bytes;
 * pipelines: JSON.stringify to bytes, JSON.parse + Schema validation, the handler. No broker, no
 * concurrency (there is nothing to wait for), so the ratio is Switchyard's whole cost over the codec's.
 * Paced cases: the same loop body per message at the case's rate (its latency is the codec's).
 */
import { MemoryBroker } from "@switchyard/core"
import { Effect } from "effect"
import { Latency, Meter, orders, paced, rawDecode, rawEncode, Tracker } from "../common.ts"
import type { Driver } from "../driver.ts"
import { expectEqual } from "../driver.ts"
import { type WorkerInput, type WorkerResult } from "../spec.ts"
import { runTyped } from "../typed.ts"

const raw = async (input: WorkerInput): Promise<WorkerResult> => {
  const meter = new Meter()
  const tracker = new Tracker()
  const pipeline = input.case.kind === "pipeline"
  let published = 0
  let bytes = 0
  const latency = new Latency()
  const one = (order: ReturnType<typeof orders>[number]) => {
    const payload = rawEncode(order)
    bytes += payload.length
    published++
    if (pipeline) {
      const decoded = rawDecode(payload)
      latency.received(decoded.orderId)
      tracker.record(decoded)
    }
  }
  const rate = input.case.rate
  const loop = async (values: ReadonlyArray<ReturnType<typeof orders>[number]>, timed: boolean) => {
    if (rate === undefined) for (const order of values) one(order)
    else {
      await paced(values, rate, (order) => {
        if (timed) latency.sent(order.orderId)
        one(order)
      })
    }
  }
  await loop(orders(0, input.warmup), false)
  const timed = orders(input.warmup, input.n)
  meter.start()
  await loop(timed, true)
  meter.stop()
  return {
    elapsedMs: meter.elapsedMs,
    cpuMicros: meter.cpuMicros,
    maxRssKiB: 0,
    published,
    consumed: tracker.seen.size,
    ...(rate !== undefined ? { latency: latency.summary() } : {}),
    brokerNote: `bare loop: ${published} encoded (${bytes} B)${pipeline ? `, ${tracker.seen.size} decoded` : ""}`
  }
}

export const driver: Driver = {
  name: "memory",
  title: "in-memory broker (raw = bare codec loop)",
  // 100,000: at 20,000 the JIT compiling the typed side's first few thousand messages was a third of its CPU per message
  defaultN: 100_000,
  rawLabel: "bare loop",
  setup: async () => ({ env: {}, close: async () => {} }),
  // The broker lives in the worker: the worker checks its counts in-process (below) and reports them.
  prepare: async (input) => async (result) => {
    expectEqual("messages published", result.published, input.warmup + input.n)
    if (input.case.kind === "pipeline") expectEqual("distinct orders handled", result.consumed, input.warmup + input.n)
    return result.brokerNote ?? ""
  },
  typed: (input) =>
    runTyped(input, MemoryBroker.layer(), {
      check: (input, published) =>
        Effect.gen(function*() {
          const inspect = yield* MemoryBroker.MemoryBroker
          const count = yield* inspect.publishedCount(input.destination)
          expectEqual("publishedCount", count, published)
          if (input.case.kind !== "pipeline") return `memory broker: ${count} published`
          const lag = yield* inspect.lag(input.destination, input.group)
          expectEqual(`lag of group ${input.group}`, lag, 0)
          return `memory broker: ${count} published, group lag ${lag}`
        })
    }),
  raw
}
