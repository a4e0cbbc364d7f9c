// tsc's `rewriteRelativeImportExtensions` rewrites `./x.ts` to `./x.js` in the emitted JavaScript but keeps
// `./x.ts` in the emitted declarations. TypeScript resolves those, yet other tools and older compilers do
// not, so the declarations get the same `.js` specifiers as the JavaScript. `.ts` and `.js` have the same
// length, so the declaration maps stay exact. Usage: node scripts/fix-dts-extensions.mjs <dist dir>
import * as fs from "node:fs"
import * as path from "node:path"

const dir = process.argv[2]
if (dir === undefined || !fs.existsSync(dir)) {
  console.error(`fix-dts-extensions: no such directory: ${dir}`)
  process.exit(1)
}
const specifier = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g
let files = 0
for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue
  const file = path.join(entry.parentPath, entry.name)
  const text = fs.readFileSync(file, "utf8")
  const fixed = text.replace(specifier, "$1$2.js$3")
  if (fixed !== text) {
    fs.writeFileSync(file, fixed)
    files++
  }
}
const left = []
for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue
  const file = path.join(entry.parentPath, entry.name)
  if (/["']\.{1,2}\/[^"']*\.ts["']/.test(fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, ""))) left.push(file)
}
if (left.length > 0) {
  console.error(`fix-dts-extensions: relative .ts specifiers left in ${left.join(", ")}`)
  process.exit(1)
}
console.log(`fix-dts-extensions: ${files} declaration files rewritten in ${dir}`)
