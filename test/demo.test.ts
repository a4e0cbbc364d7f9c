import { describe, expect, it } from "vitest"
import { expectedSummary, runDemo } from "./support/runDemo.ts"

describe("demo pipeline (in-memory broker)", () => {
  it("runs to completion, prints the summary, dead-letters the bad messages and exits 0", async () => {
    const { code, output } = await runDemo(["--orders", "200", "--broker", "memory"])
    const expected = expectedSummary(200)
    expect(output).toContain("Order pipeline summary (memory)")
    expect(output).toMatch(expected.emailed)
    expect(output).toMatch(expected.duplicatesSkipped)
    expect(output).toContain(expected.noViolations)
    expect(output).toMatch(expected.deadLettered)
    expect(output).toMatch(/2 × inventory: OutOfStock/)
    expect(output).toMatch(/2 × email: DecodeError/)
    expect(output).toMatch(/1 × inventory: UnknownEventType/)
    expect(code).toBe(0)
  }, 120_000)

  it("drains in-flight messages on SIGTERM and exits", async () => {
    let sent = false
    const { code, output } = await runDemo(["--orders", "200000", "--broker", "memory"], { onOutput: (text, kill) => {
      if (!sent && text.includes("order pipeline on memory")) {
        sent = true
        setTimeout(() => kill("SIGTERM"), 1500)
      }
    } })
    expect(sent).toBe(true)
    expect(output).toContain('consumer "email"')
    expect(output).toContain("draining in-flight messages")
    expect(output).not.toContain("Order pipeline summary")
    expect(code).toBe(130)
  }, 120_000)
})
