/**
 * The documentation stays true: the API reference in docs/api is what TypeDoc generates from the current
 * TSDoc (`pnpm docs:api` regenerates it), and every ```ts example (TSDoc @example blocks, READMEs, guides)
 * type-checks against the workspace packages, with an @example on every exported function
 * (`pnpm check:examples`).
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const root = path.resolve(import.meta.dirname, "..")

const node = (script: string, args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, "scripts", script), ...args], { cwd: root })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, output }))
  })

describe("documentation", () => {
  it("docs/api is current (pnpm docs:api regenerates it)", async () => {
    const { code, output } = await node("docs-api.mjs", ["--check"])
    expect(output).toContain("docs/api is current")
    expect(code, output).toBe(0)
  }, 120_000)

  it("every ```ts example type-checks and every exported function has an @example (pnpm check:examples)", async () => {
    const { code, output } = await node("check-examples.mjs", [])
    expect(code, output).toBe(0)
    expect(output).toMatch(/\d+ examples type-check/)
  }, 120_000)
})
