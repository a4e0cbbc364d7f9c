/**
 * The library sources keep the style rules CI enforces (scripts/check-style.mjs): no `while (true)`, no
 * `Reflect.get` on client internals, no mutable boolean flags, no `Date.now()` (time comes from `Clock`).
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const root = path.resolve(import.meta.dirname, "..")

describe("style", () => {
  it("packages/*/src has no while (true), Reflect.get, mutable flag or Date.now() (scripts/check-style.mjs)", () => {
    const result = spawnSync(process.execPath, [path.join(root, "scripts", "check-style.mjs")], { cwd: root, encoding: "utf8" })
    expect(result.stdout).toMatch(/\d+ source files checked, 0 style offences/)
    expect(result.status, result.stdout + result.stderr).toBe(0)
  })
})
