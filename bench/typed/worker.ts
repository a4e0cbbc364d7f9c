/**
 * One measurement in a fresh process: `node --import tsx bench/typed/worker.ts '<WorkerInput JSON>'`.
 * Prints one `@@bench-result {…}` line on stdout; exits non-zero on any failure or after a time limit.
 */
import { drivers } from "./driver.ts"
import { RESULT_PREFIX, type WorkerInput } from "./spec.ts"

const input = JSON.parse(process.argv[2] ?? "null") as WorkerInput
const limitSeconds = Number(process.env["BENCH_WORKER_TIMEOUT"] ?? 180)
const watchdog = setTimeout(() => {
  console.error(`worker timed out after ${limitSeconds} s (${input.broker} ${input.side} ${input.case.id})`)
  process.exit(4)
}, limitSeconds * 1000)
watchdog.unref()

const main = async () => {
  const load = drivers[input.broker]
  if (load === undefined) throw new Error(`unknown broker ${input.broker}`)
  const driver = await load()
  const result = await (input.side === "raw" ? driver.raw(input) : driver.typed(input))
  const out = { ...result, maxRssKiB: process.resourceUsage().maxRSS }
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(out)}\n`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`worker failed (${input.broker} ${input.side} ${input.case.id}):`, error)
    process.exit(1)
  }
)
