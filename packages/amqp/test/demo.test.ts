import { describe, expect, it } from "vitest"
import { expectedSummary, runDemo } from "../../../test/support/runDemo.ts"

describe("demo pipeline on RabbitMQ", () => {
  it("runs through the broker switch to the expected outcome", async () => {
    const { code, output } = await runDemo(["--broker", "amqp", "--orders", "300"])
    const expected = expectedSummary(300)
    expect(output).toContain("Order pipeline summary (rabbitmq)")
    expect(output).toMatch(expected.emailed)
    expect(output).toMatch(expected.duplicatesSkipped)
    expect(output).toContain(expected.noViolations)
    expect(output).toMatch(expected.deadLettered)
    expect(code).toBe(0)
  }, 180_000)
})
