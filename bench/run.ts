/**
 * `pnpm bench [typed|bytes] [broker…]` / `./switchyard bench [typed|bytes] [broker…]`
 *
 * Brokers: core (alias memory), amqp, nats (core NATS and JetStream), jetstream, kafka, sqs, redis; none = all.
 * `effect-kafka`: Switchyard against effect-kafka on Kafka produce (installs the peer on its first run).
 * sqs and redis have the typed-path table only.
 * For each broker: first the typed-path table (bench/typed/: `Topic` + `Publisher` + `Consumer.run`
 * against the raw client, a fresh process per measurement, see docs/benchmarks.md), then the byte-level
 * table (bench/<broker>.ts: the `Broker` contract against the raw client). `typed` runs only the first,
 * `bytes` only the second. Every benchmark runs in its own process so their memory figures do not mix.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const here = fileURLToPath(new URL(".", import.meta.url))
// broker name → typed drivers (bench/typed/drivers) and byte-level bench file (bench/<name>.ts)
const plan: Record<string, { readonly typed: ReadonlyArray<string>; readonly bytes: string | undefined }> = {
  core: { typed: ["memory"], bytes: "core" },
  amqp: { typed: ["amqp"], bytes: "amqp" },
  nats: { typed: ["nats", "jetstream"], bytes: "nats" },
  kafka: { typed: ["kafka"], bytes: "kafka" },
  redis: { typed: ["redis"], bytes: undefined },
  sqs: { typed: ["sqs"], bytes: undefined }
}
const aliases: Record<string, { readonly typed: ReadonlyArray<string>; readonly bytes: string | undefined }> = {
  ...plan,
  memory: plan["core"]!,
  jetstream: { typed: ["jetstream"], bytes: undefined }, // the byte-level JetStream rows live in bench/nats.ts
  // Switchyard against the Effect peer on Kafka produce (not part of `./switchyard bench` without names)
  "effect-kafka": { typed: ["effect-kafka"], bytes: undefined }
}

let args = process.argv.slice(2)
const mode = args[0] === "typed" || args[0] === "bytes" ? args[0] : "both"
if (mode !== "both") args = args.slice(1)
const names = args.length > 0 ? args : Object.keys(plan)

const run = (label: string, file: string, extra: ReadonlyArray<string>) => {
  console.log(`\n=== bench: ${label} ===`)
  const result = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", file, ...extra], { stdio: "inherit" })
  return result.status === 0
}

// The typed path runs against the built packages (see bench/typed/harness.ts): build them first.
const build = () => {
  if (mode === "bytes" || process.env["BENCH_SOURCE"] === "1" || process.env["BENCH_BUILD"] === "0") return true
  console.log("building the packages (dist/) for the typed-path benchmarks (BENCH_SOURCE=1: measure the sources; BENCH_BUILD=0: the dist/ as it is)")
  return spawnSync("pnpm", ["--silent", "run", "build"], { stdio: "inherit", cwd: `${here}..` }).status === 0
}

let failed = build() ? 0 : 1
for (const name of failed === 0 ? names : []) {
  const entry = aliases[name]
  if (entry === undefined) {
    console.error(`no benchmark named "${name}" (have: ${Object.keys(aliases).join(", ")}; prefix with typed or bytes for one table)`)
    failed++
    continue
  }
  if (mode !== "bytes" && !run(`${name} (typed path)`, `${here}typed/harness.ts`, entry.typed)) failed++
  if (mode !== "typed" && entry.bytes !== undefined && !run(`${name} (byte-level Broker contract)`, `${here}${entry.bytes}.ts`, [])) failed++
}
process.exit(failed === 0 ? 0 : 1)
