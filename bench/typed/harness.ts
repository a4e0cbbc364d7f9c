/**
 * The typed-path benchmark orchestrator:
 *
 *   node --import tsx bench/typed/harness.ts <broker…>     (memory | amqp | nats | jetstream | kafka | sqs | redis)
 *
 * Every (case, side) measurement runs in a fresh `node --import tsx bench/typed/worker.ts` process. Rounds
 * go over every case; within a round both sides of a case run back to back, the side that goes first
 * alternating, and the case order rotates from round to round. Before each measurement the driver prepares
 * the broker (queues, streams, topics, a witness subscription); after the worker exits it checks the
 * broker's own counts, and the run stops with an error when a message is missing.
 *
 * Environment: BENCH_ROUNDS (default 3), BENCH_N (timed messages per measurement, every broker) or
 * BENCH_<BROKER>_N (one broker), BENCH_WARMUP (untimed messages first, default N/10, at most 2000),
 * BENCH_CASES (comma-separated case ids or prefixes, e.g. `publish64,run-c8`), BENCH_LATENCY_N /
 * BENCH_LATENCY_WARMUP (the paced latency case's sizes, default 5,000 / 2,000 at 1,000 msg/s).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { type Driver, drivers } from "./driver.ts"
import {
  type CaseSpec,
  cases,
  LATENCY_N,
  LATENCY_WARMUP,
  type LatencySummary,
  PAYLOAD_BYTES,
  RESULT_PREFIX,
  type Side,
  type WorkerInput,
  type WorkerResult
} from "./spec.ts"

const here = fileURLToPath(new URL(".", import.meta.url))
const root = fileURLToPath(new URL("../..", import.meta.url))
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3)
const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`

const sizeOf = (driver: Driver) =>
  Number(process.env[`BENCH_${driver.name.toUpperCase()}_N`] ?? process.env["BENCH_N"] ?? driver.defaultN)
const warmupOf = (n: number) => Number(process.env["BENCH_WARMUP"] ?? Math.min(2_000, Math.ceil(n / 10)))

const selected = (driver: Driver): ReadonlyArray<CaseSpec> => {
  const own = driver.kinds === undefined ? cases : cases.filter((c) => driver.kinds!.includes(c.kind))
  const filter = process.env["BENCH_CASES"]
  if (filter === undefined || filter === "") return own
  const wanted = filter.split(",").map((s) => s.trim()).filter((s) => s !== "")
  const chosen = own.filter((c) => wanted.some((w) => c.id === w || c.id.startsWith(w)))
  if (chosen.length === 0) throw new Error(`BENCH_CASES=${filter} matches no case (have: ${cases.map((c) => c.id).join(", ")})`)
  return chosen
}

const runWorker = (input: WorkerInput) =>
  new Promise<WorkerResult>((resolve, reject) => {
    // kafkajs schedules a negative timeout on Node 24 (a harmless warning per process): silenced.
    const flags = ["--disable-warning=TimeoutNegativeWarning", "--import", "tsx"]
    // The packages as npm users run them: their built `dist/` (the `switchyard-dist` export condition; `bench/run.ts`
    // builds first), not the sources through tsx, whose keepNames helper redefines the `name` of every closure made
    // per message (measured: ~2.9 KiB of garbage per message on the RabbitMQ pipeline). BENCH_SOURCE=1: the sources.
    if (process.env["BENCH_SOURCE"] !== "1") flags.push("--conditions=switchyard-dist")
    // BENCH_NODE_FLAGS: extra V8/Node flags for the workers (e.g. `--trace-gc`, which NODE_OPTIONS refuses)
    flags.push(...(process.env["BENCH_NODE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== ""))
    const child = spawn(process.execPath, [...flags, `${here}worker.ts`, JSON.stringify(input)], {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => (out += chunk))
    child.on("error", reject)
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith(RESULT_PREFIX))
      // The library's INFO logs (a consumer draining at shutdown) are dropped unless BENCH_VERBOSE is set.
      const verbose = process.env["BENCH_VERBOSE"] !== undefined
      const rest = out.split("\n").filter((l) =>
        !l.startsWith(RESULT_PREFIX) && l.trim() !== "" && (verbose || !/^\[[\d:.]+\] INFO /.test(l))
      ).join("\n")
      if (rest !== "") process.stdout.write(`${rest}\n`)
      if (code !== 0 || line === undefined) return reject(new Error(`worker ${input.side} ${input.case.id} exited with ${code}`))
      resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as WorkerResult)
    })
  })

interface Sample {
  readonly rate: number
  readonly cpuPerMsg: number
  readonly rssMiB: number
  readonly latency: LatencySummary | undefined
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const int = (x: number) => Math.round(x).toLocaleString("en-US")
const ms = (micros: number) => (micros / 1000).toFixed(2)

export const benchBroker = async (name: string): Promise<void> => {
  const load = drivers[name]
  if (load === undefined) throw new Error(`no typed benchmark for "${name}" (have: ${Object.keys(drivers).join(", ")})`)
  const driver = await load()
  const n = sizeOf(driver)
  const warmup = warmupOf(n)
  const chosen = selected(driver)
  console.log(
    `\n--- typed path: ${driver.title}; ${int(n)} timed + ${int(warmup)} warm-up × ${PAYLOAD_BYTES} B JSON orders per ` +
      `measurement, ${ROUNDS} round(s), a fresh process per measurement ---`
  )
  const setup = await driver.setup()
  const samples = new Map<string, Record<Side, Array<Sample>>>()
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < chosen.length; k++) {
        const index = (k + round) % chosen.length
        const spec = chosen[index]!
        const sides: Array<Side> = (round + index) % 2 === 0 ? ["switchyard", "raw"] : ["raw", "switchyard"]
        for (const side of sides) {
          const paced = spec.rate !== undefined
          const input: WorkerInput = {
            broker: driver.name,
            side,
            case: spec,
            destination: `bench.typed.${runId}.${spec.id}.${side === "raw" ? "raw" : "sy"}.${round}`,
            group: `g-${runId}-${spec.id}-${side}-${round}`,
            prefetch: spec.kind === "pipeline" ? driver.prefetch : undefined,
            warmup: paced ? LATENCY_WARMUP : warmup,
            n: paced ? LATENCY_N : n,
            env: setup.env
          }
          const verify = await driver.prepare(input)
          const result = await runWorker(input)
          const note = await verify(result)
          const sample = {
            rate: input.n / (result.elapsedMs / 1000),
            cpuPerMsg: result.cpuMicros / input.n,
            rssMiB: result.maxRssKiB / 1024,
            latency: result.latency
          }
          const entry = samples.get(spec.id) ?? { switchyard: [], raw: [] }
          entry[side].push(sample)
          samples.set(spec.id, entry)
          console.log(
            `  round ${round + 1} ${spec.id.padEnd(17)} ${side.padEnd(10)} ${int(sample.rate).padStart(9)} msg/s  ` +
              `${sample.cpuPerMsg.toFixed(1).padStart(6)} µs CPU/msg  ${sample.rssMiB.toFixed(0).padStart(4)} MiB  ` +
              `${sample.latency === undefined ? "" : `p50 ${ms(sample.latency.p50)} p99 ${ms(sample.latency.p99)} ms  `}ok: ${note}`
          )
        }
      }
    }
  } finally {
    await setup.close()
  }
  printTable(driver, chosen, samples, n)
}

const printTable = (driver: Driver, chosen: ReadonlyArray<CaseSpec>, samples: Map<string, Record<Side, Array<Sample>>>, n: number) => {
  printThroughput(driver, chosen.filter((spec) => spec.rate === undefined), samples, n)
  printLatency(driver, chosen.filter((spec) => spec.rate !== undefined), samples)
}

const printRows = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  console.log(line(header))
  for (const r of rows) console.log(line(r))
}

/** Paced cases: medians over rounds of each run's p50 / p99 / max, and the p99 difference. */
const printLatency = (driver: Driver, chosen: ReadonlyArray<CaseSpec>, samples: Map<string, Record<Side, Array<Sample>>>) => {
  if (chosen.length === 0) return
  const rows = chosen.map((spec) => {
    const s = samples.get(spec.id)!
    const of = (side: Side, q: keyof LatencySummary) => median(s[side].map((x) => x.latency?.[q] ?? NaN))
    const cpu = (side: Side) => median(s[side].map((x) => x.cpuPerMsg))
    const rss = (side: Side) => Math.max(...s[side].map((x) => x.rssMiB))
    return [
      spec.label,
      `${ms(of("switchyard", "p50"))} / ${ms(of("raw", "p50"))}`,
      `${ms(of("switchyard", "p99"))} / ${ms(of("raw", "p99"))}`,
      `${(of("switchyard", "p99") - of("raw", "p99") >= 0 ? "+" : "")}${ms(of("switchyard", "p99") - of("raw", "p99"))}`,
      `${ms(of("switchyard", "max"))} / ${ms(of("raw", "max"))}`,
      `${cpu("switchyard").toFixed(1)} / ${cpu("raw").toFixed(1)}`,
      `${rss("switchyard").toFixed(0)} / ${rss("raw").toFixed(0)}`
    ]
  })
  console.log(`\nlatency, ${driver.title} — raw side: ${driver.rawLabel}; ${int(LATENCY_N)} paced messages per measurement; median of ${ROUNDS} runs' percentiles`)
  printRows(["case", "p50 ms sy / raw", "p99 ms sy / raw", "p99 Δ ms", "max ms sy / raw", "CPU µs/msg sy / raw", "peak RSS MiB sy / raw"], rows)
}

const printThroughput = (driver: Driver, chosen: ReadonlyArray<CaseSpec>, samples: Map<string, Record<Side, Array<Sample>>>, n: number) => {
  if (chosen.length === 0) return
  const rows = chosen.map((spec) => {
    const s = samples.get(spec.id)!
    const stat = (side: Side) => {
      const xs = s[side]
      const rates = xs.map((x) => x.rate)
      return {
        median: median(rates),
        spread: `${int(Math.min(...rates))}–${int(Math.max(...rates))}`,
        cpu: median(xs.map((x) => x.cpuPerMsg)),
        rss: Math.max(...xs.map((x) => x.rssMiB))
      }
    }
    const sy = stat("switchyard")
    const raw = stat("raw")
    return [
      spec.label,
      int(sy.median),
      sy.spread,
      int(raw.median),
      raw.spread,
      (sy.median / raw.median).toFixed(2),
      `${sy.cpu.toFixed(1)} / ${raw.cpu.toFixed(1)}`,
      `${sy.rss.toFixed(0)} / ${raw.rss.toFixed(0)}`
    ]
  })
  console.log(`\ntyped path, ${driver.title} — raw side: ${driver.rawLabel}; ${int(n)} messages per measurement; median of ${ROUNDS} (ratio = median / median)`)
  printRows(["case", "switchyard msg/s", "(min–max)", `raw msg/s`, "(min–max)", "ratio", "CPU µs/msg sy / raw", "peak RSS MiB sy / raw"], rows)
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]
if (isMain) {
  const names = process.argv.slice(2)
  ;(async () => {
    for (const name of names.length > 0 ? names : Object.keys(drivers).filter((d) => d !== "effect-kafka")) await benchBroker(name)
  })().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`\nTYPED BENCHMARK FAILED: ${error instanceof Error ? error.message : String(error)}`)
      process.exit(1)
    }
  )
}
