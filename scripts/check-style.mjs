#!/usr/bin/env node
/**
 * The style rules CI enforces on the library sources (packages/*\/src), outside comments:
 * - no `while (true)`: loops are `Effect.forever`, `Effect.repeat` / `Schedule`, or recursion on a Stream;
 * - no `Reflect.get`: adapters read only the client's public API;
 * - no mutable flags (`let x = true|false`): state shared between a client's callbacks and fibers lives in
 *   the kit's primitives (Settlement, DeliveryQueue, Supervisor, Latch, Ref), not in a `let`;
 * - no `Date.now()`: time comes from `Clock`, so TestClock controls it.
 * Prints each offence as `file:line: rule: text` and exits 1 when there is one.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const rules = [
  { name: "while (true)", pattern: /\bwhile\s*\(\s*true\s*\)/ },
  { name: "Reflect.get", pattern: /\bReflect\.get\b/ },
  { name: "mutable flag", pattern: /\blet\s+\w+(\s*:\s*boolean)?\s*=\s*(true|false)\b/ },
  { name: "Date.now()", pattern: /\bDate\.now\s*\(/ }
]

const sourcesOf = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourcesOf(full)
    return entry.name.endsWith(".ts") ? [full] : []
  })

/** The line without its comment part (block comments are dropped line by line; `//` cuts the rest). */
const codeLines = (text) => {
  let inBlock = false
  return text.split("\n").map((line) => {
    let code = ""
    let rest = line
    for (;;) {
      if (inBlock) {
        const end = rest.indexOf("*/")
        if (end < 0) return code
        rest = rest.slice(end + 2)
        inBlock = false
      }
      const start = rest.indexOf("/*")
      const lineComment = rest.search(/(^|[^:"'`])\/\//)
      if (lineComment >= 0 && (start < 0 || lineComment < start)) return code + rest.slice(0, lineComment + 1)
      if (start < 0) return code + rest
      code += rest.slice(0, start)
      rest = rest.slice(start + 2)
      inBlock = true
    }
  })
}

const packagesDir = path.join(root, "packages")
const offences = []
let files = 0
for (const pkg of fs.readdirSync(packagesDir)) {
  const src = path.join(packagesDir, pkg, "src")
  if (!fs.existsSync(src)) continue
  for (const file of sourcesOf(src)) {
    files++
    codeLines(fs.readFileSync(file, "utf8")).forEach((line, index) => {
      for (const rule of rules) {
        if (rule.pattern.test(line)) offences.push(`${path.relative(root, file)}:${index + 1}: ${rule.name}: ${line.trim()}`)
      }
    })
  }
}
for (const offence of offences) console.log(offence)
console.log(`${files} source files checked, ${offences.length} style offences`)
process.exit(offences.length === 0 ? 0 : 1)
