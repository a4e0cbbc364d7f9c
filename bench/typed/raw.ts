/**
 * The raw side's phases, shared by every broker driver: the same warm-up, timing and case shapes as
 * `typed.ts`, over a small client interface each driver implements with its raw client.
 */
import { chunks, Latency, makeDispatcher, Meter, orders, paced, pool, rawDecode, Tracker } from "./common.ts"
import { type CaseSpec, type Order, prefetchOf, type WorkerInput, type WorkerResult } from "./spec.ts"

export interface RawClient {
  /** One message, resolved on the broker's confirmation. */
  readonly publish: (order: Order) => Promise<void>
  /** A batch, resolved when the broker confirmed all of it. */
  readonly publishBatch: (orders: ReadonlyArray<Order>) => Promise<void>
  /**
   * Starts consuming the case's group with `prefetch` unacked at most; resolves once the broker has
   * registered the subscription. `onMessage` gets the payload and the settle (ack) function.
   */
  readonly subscribe: (prefetch: number, onMessage: (payload: Uint8Array, settle: () => void) => void) => Promise<void>
  /** Stops consuming (after the timed part; unsettled messages go back to the broker). */
  readonly unsubscribe: () => Promise<void>
  readonly close: () => Promise<void>
}

export const runRaw = async (input: WorkerInput, client: RawClient): Promise<WorkerResult> => {
  const spec: CaseSpec = input.case
  const meter = new Meter()
  const tracker = new Tracker()
  const latency = new Latency()
  let published = 0
  const publishPhase = async (values: ReadonlyArray<Order>, timed = false) => {
    if (spec.rate !== undefined) {
      await paced(values, spec.rate, async (o) => {
        if (timed) latency.sent(o.orderId)
        await client.publish(o)
        published++
      })
    } else if (spec.kind === "publish") {
      await pool(values, spec.fibers ?? 64, async (o) => {
        await client.publish(o)
        published++
      })
    } else {
      // publishAll: batches of `batch`; pipeline: the sink's batch size, one batch confirmed before the next.
      for (const batch of chunks(values, spec.batch ?? 1000)) {
        await client.publishBatch(batch)
        published += batch.length
      }
    }
  }
  try {
    const warm = orders(0, input.warmup)
    const timed = orders(input.warmup, input.n)
    if (spec.kind !== "pipeline") {
      await publishPhase(warm)
      meter.start()
      await publishPhase(timed)
      meter.stop()
    } else {
      const dispatch = makeDispatcher(spec, spec.rate === undefined ? (order) => void tracker.record(order) : (order) => {
        latency.received(order.orderId)
        tracker.record(order)
      })
      await client.subscribe(input.prefetch ?? prefetchOf(spec), (payload, settle) => dispatch(rawDecode(payload), settle))
      await publishPhase(warm)
      await tracker.until(warm.length)
      meter.start()
      await Promise.all([publishPhase(timed, true), tracker.until(warm.length + timed.length)])
      meter.stop()
      // let the last settlements (scheduled after the handler's promise) go out before stopping
      await new Promise((r) => setTimeout(r, 50))
      await client.unsubscribe()
    }
  } finally {
    await client.close()
  }
  return {
    elapsedMs: meter.elapsedMs,
    cpuMicros: meter.cpuMicros,
    maxRssKiB: 0,
    published,
    consumed: tracker.seen.size,
    ...(spec.rate !== undefined ? { latency: latency.summary() } : {})
  }
}
