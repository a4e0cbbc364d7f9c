import { describe, expect, it } from "vitest"
import { run } from "./helpers.ts"

const commands: ReadonlyArray<{ readonly path: ReadonlyArray<string>; readonly mentions: ReadonlyArray<string> }> = [
  { path: [], mentions: ["tail", "publish", "dlq", "lag", "health", "--broker"] },
  { path: ["tail"], mentions: ["<topic>", "--group", "--from", "--raw", "--json"] },
  { path: ["publish"], mentions: ["<topic>", "--key", "--header", "--json"] },
  { path: ["dlq"], mentions: ["list", "show", "redrive", "purge"] },
  { path: ["dlq", "list"], mentions: ["<topic>", "--group", "--reason", "--since", "--limit", "--json"] },
  { path: ["dlq", "show"], mentions: ["<topic>", "<id>", "--json"] },
  { path: ["dlq", "redrive"], mentions: ["<topic>", "--group", "--reason", "--since", "--rate", "--dry-run", "--json"] },
  { path: ["dlq", "purge"], mentions: ["<topic>", "--group", "--reason", "--dry-run", "--json"] },
  { path: ["lag"], mentions: ["<topic>", "--group", "--json"] },
  { path: ["health"], mentions: ["--json", "--broker"] }
]

describe("--help", () => {
  for (const { mentions, path } of commands) {
    it(`switchyard ${[...path, "--help"].join(" ")}: usage, every option, exit code 0`, async () => {
      const result = await run([...path, "--help"])
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain(`USAGE\n  switchyard${path.length > 0 ? ` ${path.join(" ")}` : ""}`)
      expect(result.stdout).toContain("DESCRIPTION")
      for (const word of mentions) expect(result.stdout, word).toContain(word)
    })
  }

  it("an unknown flag prints the help with the problem and exits 2", async () => {
    const result = await run(["lag", "orders", "--group", "g", "--bogus"])
    expect(result.code).toBe(2)
    expect(result.stdout + result.stderr).toMatch(/--bogus/)
  })

  it("a missing required flag exits 2", async () => {
    const result = await run(["lag", "orders"])
    expect(result.code).toBe(2)
    expect(result.stdout + result.stderr).toContain("Missing required flag: --group")
  })
})
