/**
 * Worker-side helpers shared by both sides: the meter (wall clock + CPU of the timed part), the tracker of
 * handled orders, and the raw side's codec and concurrency (what a user of the raw client would write).
 */
import { Result, Schema } from "effect"
import * as fs from "node:fs"
import { Session } from "node:inspector"
import * as path from "node:path"
import * as v8 from "node:v8"
import { type CaseSpec, type LatencySummary, makeOrder, Order } from "./spec.ts"

// BENCH_PROFILE=<dir>: a CPU profile of the timed part of every measurement, written to
// <dir>/<broker>-<case>-<side>-<pid>.cpuprofile (an in-process inspector session: its callbacks run at once).
const profileDir = process.env["BENCH_PROFILE"]
const profiler = profileDir === undefined || profileDir === "" ? undefined : new Session()
// BENCH_PROFILE_INLINE=0: no inlining, so that allocations and time are charged to the function that makes
// them, not to the caller it was inlined into (slower: for attribution only, never for the figures)
if (profiler !== undefined && process.env["BENCH_PROFILE_INLINE"] === "0") v8.setFlagsFromString("--max-inlined-bytecode-size=0")

// BENCH_PROFILE_KIND=heap: an allocation profile instead (sampling heap profiler, .heapprofile)
const heap = process.env["BENCH_PROFILE_KIND"] === "heap"

const profileName = (): string => {
  const input = JSON.parse(process.argv[2] ?? "{}") as { broker?: string; side?: string; case?: { id?: string } }
  return `${input.broker ?? "bench"}-${input.case?.id ?? "case"}-${input.side ?? "side"}-${process.pid}.${heap ? "heapprofile" : "cpuprofile"}`
}

export class Meter {
  private t0 = 0
  private c0: NodeJS.CpuUsage | undefined
  elapsedMs = 0
  cpuMicros = 0
  start() {
    if (profiler !== undefined) {
      profiler.connect()
      if (heap) profiler.post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      })
      else {
        profiler.post("Profiler.enable")
        profiler.post("Profiler.start")
      }
    }
    this.c0 = process.cpuUsage()
    this.t0 = performance.now()
  }
  stop() {
    this.elapsedMs = performance.now() - this.t0
    const used = process.cpuUsage(this.c0)
    this.cpuMicros = used.user + used.system
    if (profiler !== undefined && profileDir !== undefined) {
      const write = (error: Error | null, result: { readonly profile: object }) => {
        if (error === null) fs.writeFileSync(path.join(profileDir, profileName()), JSON.stringify(result.profile))
        profiler.disconnect()
      }
      if (heap) profiler.post("HeapProfiler.stopSampling", write)
      else profiler.post("Profiler.stop", write)
    }
  }
}

/** Counts distinct handled orders and resolves once a target count is reached. */
export class Tracker {
  readonly seen = new Set<string>()
  handled = 0
  private target = Infinity
  private resolve: (() => void) | undefined
  /** Records one handled order; returns true when this one reached the target. */
  record(order: Order): boolean {
    this.handled++
    this.seen.add(order.orderId)
    if (this.seen.size >= this.target && this.resolve !== undefined) {
      const r = this.resolve
      this.resolve = undefined
      r()
      return true
    }
    return false
  }
  /** Resolves once `target` distinct orders were handled; rejects when nothing arrived for `stallMs`. */
  until(target: number, stallMs = Number(process.env["BENCH_STALL_MS"] ?? 15_000)): Promise<void> {
    this.target = target
    if (this.seen.size >= target) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      let last = this.handled
      let idleSince = Date.now()
      const timer = setInterval(() => {
        if (this.handled !== last) {
          last = this.handled
          idleSince = Date.now()
        } else if (Date.now() - idleSince > stallMs) {
          clearInterval(timer)
          this.resolve = undefined
          reject(new Error(`consumer stalled: ${this.seen.size} of ${target} distinct orders handled, none for ${stallMs} ms (messages lost?)`))
        }
      }, 250)
      this.resolve = () => {
        clearInterval(timer)
        resolve()
      }
    })
  }
}

/** Publish-call → handler latency per order id; only ids marked `sent` count (the timed part). */
export class Latency {
  private readonly sentAt = new Map<string, number>()
  private readonly samples: Array<number> = []
  sent(id: string) {
    this.sentAt.set(id, performance.now())
  }
  received(id: string) {
    const at = this.sentAt.get(id)
    if (at === undefined) return
    this.sentAt.delete(id) // a redelivery does not count twice
    this.samples.push((performance.now() - at) * 1000)
  }
  summary(): LatencySummary {
    const s = [...this.samples].sort((a, b) => a - b)
    const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))] ?? 0
    return { p50: at(0.5), p99: at(0.99), max: at(1) }
  }
}

/**
 * Calls `fire` for each value at `rate` per second (message i at t0 + i / rate, several per timer tick when
 * the timer is late), without waiting for earlier ones; resolves when every returned promise has.
 */
export const paced = (values: ReadonlyArray<Order>, rate: number, fire: (order: Order) => Promise<void> | void) =>
  new Promise<void>((resolve, reject) => {
    const pending: Array<Promise<void> | void> = []
    const t0 = performance.now()
    let next = 0
    const tick = () => {
      const due = Math.min(values.length, Math.floor(((performance.now() - t0) * rate) / 1000) + 1)
      for (; next < due; next++) pending.push(fire(values[next]!))
      if (next < values.length) setTimeout(tick, Math.max(0, t0 + (next * 1000) / rate - performance.now()))
      else Promise.all(pending).then(() => resolve(), reject)
    }
    tick()
  })

export const orders = (from: number, n: number) => Array.from({ length: n }, (_, i) => makeOrder(from + i))
export const chunks = <A>(xs: ReadonlyArray<A>, size: number): Array<Array<A>> => {
  const out: Array<Array<A>> = []
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size))
  return out
}

// ------------------------------------------------------------------ raw codec
/** Raw encode: JSON.stringify into a Buffer (what a raw user does). */
export const rawEncode = (order: Order): Buffer => Buffer.from(JSON.stringify(order))
const validate = Schema.decodeUnknownResult(Order)
/** Raw decode: JSON.parse + the same Schema validation as the typed topic; throws on a bad payload. */
export const rawDecode = (bytes: Uint8Array): Order => {
  const text = Buffer.isBuffer(bytes) ? bytes.toString("utf8") : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")
  const r = validate(JSON.parse(text))
  if (Result.isFailure(r)) throw new Error(`undecodable order: ${String(r.failure)}`)
  return r.success
}

// ------------------------------------------------------------------ raw concurrency
/** The same FNV-1a lane choice for every key; any stable hash serves. */
const hash = (s: string) => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/**
 * Runs the handler per message with the case's concurrency and ordering, then settles it: concurrency 1 →
 * one at a time in arrival order; "key" → one promise chain per lane (hash(customer) % c), sequential
 * within a key; "none" → at most c at once. The broker's prefetch bounds what is buffered.
 */
export const makeDispatcher = (
  spec: CaseSpec,
  handle: (order: Order) => Promise<void> | void
): ((order: Order, settle: () => void) => void) => {
  const concurrency = spec.concurrency ?? 1
  const fail = (e: unknown) => {
    console.error("raw handler failed:", e)
    process.exit(3)
  }
  if (concurrency === 1 || spec.ordering === "key") {
    const lanes: Array<Promise<void>> = Array.from({ length: concurrency }, () => Promise.resolve())
    return (order, settle) => {
      const lane = concurrency === 1 ? 0 : hash(order.customer) % concurrency
      lanes[lane] = lanes[lane]!.then(() => handle(order)).then(settle, fail)
    }
  }
  let running = 0
  const waiting: Array<readonly [Order, () => void]> = []
  const start = (order: Order, settle: () => void) => {
    running++
    Promise.resolve(order).then(handle).then(() => {
      settle()
      running--
      const next = waiting.shift()
      if (next !== undefined) start(next[0], next[1])
    }, fail)
  }
  return (order, settle) => (running < concurrency ? start(order, settle) : void waiting.push([order, settle]))
}

/** Runs `n` tasks with at most `workers` in flight (raw "publish from 64 fibers"). */
export const pool = async <A>(items: ReadonlyArray<A>, workers: number, task: (item: A) => Promise<unknown>) => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(workers, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!)
  }))
}
