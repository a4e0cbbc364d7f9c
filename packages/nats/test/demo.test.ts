import { describe, expect, it } from "vitest"
import { expectedSummary, runDemo } from "../../../test/support/runDemo.ts"

describe("demo pipeline on NATS JetStream", () => {
  it("runs through the broker switch to the expected outcome", async () => {
    const { code, output } = await runDemo(["--broker", "nats", "--orders", "300"])
    const expected = expectedSummary(300)
    expect(output).toContain("Order pipeline summary (nats-jetstream)")
    expect(output).toMatch(expected.emailed)
    // JetStream deduplicates the re-published orders by message id before any consumer sees them.
    expect(output).toContain("6 deduplicated by the broker")
    expect(output).toContain(expected.noViolations)
    expect(output).toMatch(expected.deadLettered)
    expect(code).toBe(0)
  }, 180_000)
})
