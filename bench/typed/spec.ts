/**
 * What every typed-path measurement shares: the order payload and its Schema, the cases, the tuning, the
 * sizes, and the messages exchanged between the orchestrator (`harness.ts`) and a worker (`worker.ts`).
 */
import { Schema } from "effect"

// ------------------------------------------------------------------ payload
export const Order = Schema.Struct({
  orderId: Schema.String,
  customer: Schema.String,
  items: Schema.Array(Schema.Struct({ sku: Schema.String, quantity: Schema.Number, price: Schema.Number })),
  total: Schema.Number,
  note: Schema.String
})
export type Order = typeof Order.Type

/** Distinct ordering keys (the topic's key is the customer: many orders per key, as in real traffic). */
export const CUSTOMERS = 1_000

const base = (i: number, note: string): Order => ({
  orderId: `o-${String(i).padStart(9, "0")}`,
  customer: `c-${String(i % CUSTOMERS).padStart(6, "0")}`,
  items: [{ sku: "sku-1", quantity: 2, price: 9.5 }, { sku: "sku-2", quantity: 1, price: 23 }],
  total: 42,
  note
})
/** Pads every order's JSON to exactly 256 bytes (ids are fixed-width). */
const NOTE = "x".repeat(256 - JSON.stringify(base(0, "")).length)
export const makeOrder = (i: number): Order => base(i, NOTE)
export const PAYLOAD_BYTES = JSON.stringify(makeOrder(0)).length

// ------------------------------------------------------------------ cases
export type CaseKind = "publish" | "publishAll" | "pipeline"

export interface CaseSpec {
  readonly id: string
  readonly label: string
  readonly kind: CaseKind
  /** `publish`: concurrent fibers / promises issuing single publishes. */
  readonly fibers?: number
  /** `publishAll`: values per call. `pipeline`: the sink's batch size. */
  readonly batch?: number
  /** `pipeline`: the consumer's concurrency and ordering. */
  readonly concurrency?: number
  readonly ordering?: "key" | "none"
  /**
   * `pipeline` only: publish single messages paced at this many per second (each awaiting its confirmation,
   * without waiting for the previous one) instead of the sink's batches, and measure each message's latency
   * from the publish call to the handler. Such cases have their own size (`LATENCY_N`) and table.
   */
  readonly rate?: number
  /** Documented tuning: `References.TracerEnabled` and `Telemetry.PerMessageMetrics` false, larger prefetch / sink batches. */
  readonly tuned: boolean
  /**
   * Defaults under a tracing backend: a `Tracer` that is not Effect's `nativeTracer` (it makes the same
   * in-memory spans and exports nothing: the least any real exporter costs), so Switchyard makes its spans.
   */
  readonly traced?: boolean
}

/** The Consumer's default prefetch (see `Consumer.Options.prefetch`): both sides hold as many unacked. */
export const defaultPrefetch = (concurrency: number) => Math.max(16, 4 * concurrency)
export const TUNED_PREFETCH = 1_000
export const DEFAULT_SINK_BATCH = 500 // Publisher.sink's default batchSize (linger 10 ms)
export const TUNED_SINK_BATCH = 1_000

export const prefetchOf = (c: CaseSpec) => (c.tuned ? TUNED_PREFETCH : defaultPrefetch(c.concurrency ?? 1))

const variants = (c: Omit<CaseSpec, "id" | "label" | "tuned"> & { id: string; label: string }): Array<CaseSpec> => [
  { ...c, id: `${c.id}`, label: `${c.label}`, tuned: false },
  {
    ...c,
    id: `${c.id}-tuned`,
    label: `${c.label}, tuned`,
    tuned: true,
    ...(c.kind === "pipeline" ? { batch: TUNED_SINK_BATCH } : {})
  }
]

export const cases: ReadonlyArray<CaseSpec> = [
  ...variants({ id: "publish64", label: "publish ×64 fibers", kind: "publish", fibers: 64 }),
  ...variants({ id: "publishAll", label: "publishAll ×1000", kind: "publishAll", batch: 1_000 }),
  ...variants({ id: "run-c1", label: "sink→run c1", kind: "pipeline", batch: DEFAULT_SINK_BATCH, concurrency: 1, ordering: "key" }),
  { id: "run-c1-traced", label: "sink→run c1, traced", kind: "pipeline", batch: DEFAULT_SINK_BATCH, concurrency: 1, ordering: "key", tuned: false, traced: true },
  ...variants({ id: "run-c8-key", label: "sink→run c8 key", kind: "pipeline", batch: DEFAULT_SINK_BATCH, concurrency: 8, ordering: "key" }),
  ...variants({ id: "run-c8-none", label: "sink→run c8 none", kind: "pipeline", batch: DEFAULT_SINK_BATCH, concurrency: 8, ordering: "none" }),
  // Defaults only: the latency a user gets out of the box at a moderate, steady rate.
  { id: "latency-1k", label: "publish→handler latency @1,000 msg/s, run c1", kind: "pipeline", concurrency: 1, ordering: "key", rate: 1_000, tuned: false }
]

/**
 * Timed messages of a paced (latency) case, and its warm-up: a few seconds at the case's rate. The warm-up is
 * long enough for the JIT's tiers to have compiled both sides' per-message code (with 300, the stalls of
 * compiling and deoptimising the first few hundred timed messages alone made the typed side's p99); 5,000
 * timed messages put 50 of them above the p99.
 */
export const LATENCY_N = Number(process.env["BENCH_LATENCY_N"] ?? 5_000)
export const LATENCY_WARMUP = Number(process.env["BENCH_LATENCY_WARMUP"] ?? 2_000)


// ------------------------------------------------------------------ orchestrator <-> worker
export type Side = "switchyard" | "raw"

export interface WorkerInput {
  readonly broker: string
  readonly side: Side
  readonly case: CaseSpec
  /** Destination (topic / exchange / subject) of this measurement; unique per measurement. */
  readonly destination: string
  /** Consumer group of this measurement (pipelines; unique per measurement). */
  readonly group: string
  /** Prefetch for both sides when the driver overrides the case's (see the core NATS driver). */
  readonly prefetch?: number | undefined
  /** Untimed warm-up messages, sent through the same path to the same destination first. */
  readonly warmup: number
  /** Timed messages. */
  readonly n: number
  /** Driver-specific settings from the orchestrator (e.g. the Kafka bootstrap address). */
  readonly env: Readonly<Record<string, string>>
}

export interface WorkerResult {
  readonly elapsedMs: number
  /** process.cpuUsage() user+system over the timed part, µs. */
  readonly cpuMicros: number
  /** process.resourceUsage().maxRSS at the end, KiB. */
  readonly maxRssKiB: number
  /** Messages published (confirmed) by the worker, warm-up included. */
  readonly published: number
  /** Distinct orders handled by the consumer (pipelines), warm-up included. */
  readonly consumed: number
  /** Paced cases: publish-call → handler latency of the timed messages, µs. */
  readonly latency?: LatencySummary
  /** In-process broker count, where the broker lives in the worker (memory). */
  readonly brokerNote?: string
}

export interface LatencySummary {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export const RESULT_PREFIX = "@@bench-result "
