/**
 * What a broker driver provides: orchestrator-side setup, per-measurement preparation and broker-side
 * verification, and the two worker-side implementations (the typed one is `typed.ts`, shared).
 */
import type { CaseKind, WorkerInput, WorkerResult } from "./spec.ts"

export interface Setup {
  /** Passed to every worker of this broker (e.g. the Kafka bootstrap address). */
  readonly env: Readonly<Record<string, string>>
  readonly close: () => Promise<void>
}

/** Runs after the worker exited; resolves with a description of what the broker counted, or throws. */
export type Verify = (result: WorkerResult) => Promise<string>

export interface Driver {
  readonly name: string
  readonly title: string
  /** Timed messages per measurement when no BENCH_N / BENCH_<NAME>_N is set. */
  readonly defaultN: number
  /** What the raw side is. */
  readonly rawLabel: string
  /** A prefetch both sides use instead of the case's (default and tuned), when the defaults cannot work. */
  readonly prefetch?: number | undefined
  /** The kinds of case this driver runs (default: every case). */
  readonly kinds?: ReadonlyArray<CaseKind> | undefined
  readonly setup: () => Promise<Setup>
  readonly prepare: (input: WorkerInput) => Promise<Verify>
  readonly typed: (input: WorkerInput) => Promise<WorkerResult>
  readonly raw: (input: WorkerInput) => Promise<WorkerResult>
}

export const drivers: Record<string, () => Promise<Driver>> = {
  memory: async () => (await import("./drivers/memory.ts")).driver,
  amqp: async () => (await import("./drivers/amqp.ts")).driver,
  nats: async () => (await import("./drivers/nats.ts")).driver,
  jetstream: async () => (await import("./drivers/jetstream.ts")).driver,
  kafka: async () => (await import("./drivers/kafka.ts")).driver,
  "effect-kafka": async () => (await import("./drivers/effectKafka.ts")).driver,
  redis: async () => (await import("./drivers/redis.ts")).driver,
  sqs: async () => (await import("./drivers/sqs.ts")).driver
}

/** Fails the run loudly. */
export const expectEqual = (what: string, actual: number, expected: number) => {
  if (actual !== expected) throw new Error(`broker-side check failed: ${what} is ${actual}, expected ${expected}`)
}
