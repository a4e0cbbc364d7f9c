// Type-checks every ```ts example: the @example blocks of the TSDoc in packages/*/src, the package READMEs,
// the root README and the guides in docs/*.md. Each block becomes one module under
// node_modules/.cache/switchyard-examples (inside the workspace, so `@switchyard/*`, `effect` and the other
// workspace dependencies resolve to the sources) and tsc checks them all, strict, like the workspace.
// A block whose first line is `// example: not checked` is skipped (a fragment, not a program).
// It also fails when an exported function of a public module (an entry point of a package.json `exports`
// or a module it re-exports) has no
// @example, unless it is marked @internal.
//   pnpm check:examples            check, print each failing example with its source location
//   pnpm check:examples --list     also list every example checked
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const out = path.join(root, "node_modules", ".cache", "switchyard-examples")
const tsc = path.join(root, "node_modules", ".bin", "tsc")

const walk = (dir, keep) =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && keep(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort()

/** ```ts blocks of a markdown text, with the line each starts on (1-based). */
const fences = (text, firstLine = 1) => {
  const blocks = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```ts\s*$/.test(lines[i])) continue
    const start = i
    const body = []
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i])
    blocks.push({ line: firstLine + start, code: body.join("\n") })
  }
  return blocks
}

/** Blocks inside the doc comments of a TypeScript source. */
const docExamples = (text) => {
  const blocks = []
  for (const match of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const firstLine = text.slice(0, match.index).split("\n").length
    const body = match[0].split("\n").map((l) => l.replace(/^\s*\/?\*+\/?\s?/, "").replace(/\s*\*\/$/, "")).join("\n")
    blocks.push(...fences(body, firstLine))
  }
  return blocks
}

/** Every library package (the CLI has no public modules to document this way). */
const adapterDirs = fs.readdirSync(path.join(root, "packages"))
  .filter((d) => d !== "cli" && fs.existsSync(path.join(root, "packages", d, "package.json")))

const sources = [
  ...walk(path.join(root, "packages"), (n) => n.endsWith(".ts"))
    .filter((f) => f.includes(`${path.sep}src${path.sep}`) && !f.includes("node_modules") && !f.includes(`${path.sep}dist${path.sep}`))
    .map((file) => ({ file, blocks: docExamples(fs.readFileSync(file, "utf8")) })),
  ...[
    path.join(root, "README.md"),
    ...adapterDirs.map((p) => path.join(root, "packages", p, "README.md")),
    ...walk(path.join(root, "docs"), (n) => n.endsWith(".md")).filter((f) => path.dirname(f) === path.join(root, "docs"))
  ].filter((f) => fs.existsSync(f)).map((file) => ({ file, blocks: fences(fs.readFileSync(file, "utf8")) }))
]

/** Exported functions (`export function f`, `export const f = (…) =>`, `= Effect.fn…`) without an @example. */
/** The entry points (each package.json's `exports`) and the modules they re-export: the public API. */
const publicModules = new Set()
for (const pkg of adapterDirs) {
  const dir = path.join(root, "packages", pkg)
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
  for (const exported of Object.values(manifest.exports)) {
    // an entry is the source path, or conditions whose `default` is (`switchyard-dist` points at dist/)
    const target = typeof exported === "string" ? exported : exported?.default
    if (typeof target !== "string" || !target.endsWith(".ts")) continue
    const entry = path.join(dir, target)
    publicModules.add(entry)
    for (const m of fs.readFileSync(entry, "utf8").matchAll(/export \* as \w+ from "(\.[^"]+)"/g)) {
      publicModules.add(path.resolve(path.dirname(entry), m[1]))
    }
  }
}
const withoutExample = []
for (const { file } of sources) {
  if (!publicModules.has(file)) continue
  const text = fs.readFileSync(file, "utf8")
  for (const m of text.matchAll(/(\/\*\*(?:(?!\*\/)[\s\S])*\*\/\s*)?export (const|function) (\w+)([^\n]*)/g)) {
    const [, doc, kind, name, rest] = m
    const isFunction = kind === "function" || /^\s*(:\s*\(|=\s*(<[^>]*>\s*)?\(|=\s*\w+\s*=>|=\s*Effect\.fn)/.test(rest)
    if (isFunction && (doc === undefined || (!doc.includes("@example") && !doc.includes("@internal")))) {
      withoutExample.push(`${path.relative(root, file)}:${text.slice(0, m.index + (doc?.length ?? 0)).split("\n").length} ${name}`)
    }
  }
}

fs.rmSync(out, { recursive: true, force: true })
fs.mkdirSync(out, { recursive: true })
const examples = []
let skipped = 0
for (const { file, blocks } of sources) {
  for (const block of blocks) {
    if (block.code.trimStart().startsWith("// example: not checked")) {
      skipped++
      continue
    }
    const rel = path.relative(root, file)
    const name = `${rel.replace(/[\\/.]/g, "_")}_L${block.line}.ts`
    // `export {}` makes each example its own module (no clashes between examples' top-level names).
    fs.writeFileSync(path.join(out, name), `${block.code}\n\nexport {}\n`)
    examples.push({ name, where: `${rel}:${block.line}` })
  }
}
fs.writeFileSync(path.join(out, "tsconfig.json"), JSON.stringify({
  extends: path.join(root, "tsconfig.base.json"),
  compilerOptions: { noUnusedLocals: false, noUnusedParameters: false, noEmit: true },
  include: ["*.ts"]
}, null, 2))

if (process.argv.includes("--list")) for (const e of examples) console.log(`  ${e.where}`)
const result = spawnSync(tsc, ["-p", path.join(out, "tsconfig.json"), "--pretty", "false"], { cwd: out, encoding: "utf8" })
const output = `${result.stdout}${result.stderr}`
// Only errors inside the examples count: errors in the sources they import are the workspace typecheck's.
const failing = new Map()
let elsewhere = 0
for (const line of output.split("\n")) {
  const m = /^([^(]+\.ts)\((\d+),(\d+)\): (error .*)$/.exec(line)
  if (m === null) continue
  const example = examples.find((e) => e.name === path.basename(m[1]) && path.dirname(path.resolve(out, m[1])) === out)
  if (example === undefined) {
    elsewhere++
    continue
  }
  failing.set(example.where, [...(failing.get(example.where) ?? []), `    line ${m[2]}: ${m[4]}`])
}
if (elsewhere > 0) console.log(`check:examples: ${elsewhere} errors outside the examples (in the sources; see pnpm typecheck), not counted`)
if (withoutExample.length > 0) {
  console.error(`check:examples: ${withoutExample.length} exported functions have no @example:\n  ${withoutExample.join("\n  ")}`)
}
if (failing.size > 0 || (result.status !== 0 && elsewhere === 0)) {
  if (failing.size === 0) console.error(output)
  for (const [where, errors] of failing) console.error(`✗ ${where}\n${errors.join("\n")}`)
  console.error(`check:examples: ${failing.size} of ${examples.length} examples do not type-check (${skipped} skipped)`)
  process.exit(1)
}
if (withoutExample.length > 0) process.exit(1)
console.log(`check:examples: ${examples.length} examples type-check (${skipped} skipped); every exported function has one`)
