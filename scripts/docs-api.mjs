// The API reference in docs/api, generated from the TSDoc of every package's entry points by TypeDoc and
// typedoc-plugin-markdown (installed in scripts/api-docs with their own TypeScript 5.9: TypeDoc needs
// TypeScript's JS API, which TypeScript 7 does not ship).
//   pnpm docs:api            regenerate docs/api
//   pnpm docs:api --check    regenerate into a temporary directory and fail if docs/api differs (CI)
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const target = path.join(root, "docs", "api")
const check = process.argv.includes("--check")
const out = check ? fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-api-docs-")) : target
const typedoc = path.join(root, "scripts", "api-docs", "node_modules", "typedoc", "bin", "typedoc")

/** Every entry point of every package under packages/ (`exports` in its package.json), core first. */
const packages = fs.readdirSync(path.join(root, "packages"))
  .filter((dir) => fs.existsSync(path.join(root, "packages", dir, "package.json")))
  .sort((a, b) => (a === "core" ? -1 : b === "core" ? 1 : a.localeCompare(b)))
const entryPoints = packages.flatMap((pkg) => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "packages", pkg, "package.json"), "utf8"))
  return Object.values(manifest.exports)
    // an entry is the source path, or conditions whose `default` is (`switchyard-dist` points at dist/)
    .map((exported) => (typeof exported === "string" ? exported : exported?.default))
    .filter((target) => typeof target === "string" && target.endsWith(".ts"))
    .map((target) => path.posix.join("packages", pkg, target))
})

const args = [
  typedoc,
  ...entryPoints.flatMap((e) => ["--entryPoints", e]),
  "--entryPointStrategy", "resolve",
  "--tsconfig", "scripts/api-docs/tsconfig.json",
  "--plugin", "typedoc-plugin-markdown",
  "--plugin", "./scripts/api-docs/plugin.mjs",
  "--out", out,
  "--name", "Switchyard API reference",
  "--readme", "none",
  // Source links would carry line numbers (and a git revision) that change with every edit.
  "--disableSources",
  "--excludePrivate",
  "--excludeInternal",
  "--excludeExternals",
  "--skipErrorChecking",
  "--hidePageHeader",
  "--hideBreadcrumbs",
  "--useCodeBlocks",
  "--outputFileStrategy", "modules",
  "--logLevel", "Warn"
]
if (!check) fs.rmSync(target, { recursive: true, force: true })
const result = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8" })
process.stdout.write(result.stdout)
process.stderr.write(result.stderr)
if (result.status !== 0) {
  console.error(`docs:api: typedoc exited with ${result.status}`)
  process.exit(1)
}

const listing = (dir) =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
      .map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort()
    : []

if (check) {
  const fresh = listing(out)
  const committed = listing(target)
  const problems = []
  for (const file of fresh) {
    if (!committed.includes(file)) problems.push(`missing: docs/api/${file}`)
    else if (fs.readFileSync(path.join(out, file), "utf8") !== fs.readFileSync(path.join(target, file), "utf8")) {
      problems.push(`stale:   docs/api/${file}`)
    }
  }
  for (const file of committed) if (!fresh.includes(file)) problems.push(`extra:   docs/api/${file}`)
  fs.rmSync(out, { recursive: true, force: true })
  if (problems.length > 0) {
    console.error(`docs/api is not current (${problems.length} files); run \`pnpm docs:api\` and commit docs/api:\n${problems.join("\n")}`)
    process.exit(1)
  }
  console.log(`docs/api is current (${fresh.length} files)`)
} else {
  console.log(`docs:api: ${listing(out).length} files in docs/api`)
}
