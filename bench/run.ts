/**
 * `pnpm bench [name…]` / `./switchyard bench [name…]`: runs the named benchmarks (core, amqp, nats, kafka),
 * or all of them, each in its own process so their memory figures do not mix.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const here = fileURLToPath(new URL(".", import.meta.url))
const all = ["core", "amqp", "nats", "kafka"]
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : all
let failed = 0
for (const name of names) {
  const file = `${here}${name}.ts`
  if (!existsSync(file)) {
    console.error(`no benchmark named "${name}" (have: ${all.join(", ")})`)
    failed++
    continue
  }
  console.log(`\n=== bench: ${name} ===`)
  const result = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", file], { stdio: "inherit" })
  if (result.status !== 0) failed++
}
process.exit(failed === 0 ? 0 : 1)
