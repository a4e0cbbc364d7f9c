import { describe, expect, it } from "vitest"
import { demoRunsOn, expectedSummary } from "../../../test/support/runDemo.ts"

// Without SQS_ENDPOINT the demo starts its own ElasticMQ from the cached Maven jars, as on a fresh machine.
describe("demo pipeline on SQS", () => {
  it(
    "runs through the broker switch to the expected outcome (one FIFO queue per group)",
    demoRunsOn("sqs", "aws_sqs", {
      extra: (output) => {
        expect(output).toMatch(expectedSummary(300).emailed)
        expect(output).toContain("one queue per group")
      }
    }),
    180_000
  )
})
