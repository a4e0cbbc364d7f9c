import { describe, expect, it } from "vitest"
import { demoRunsOn, expectedSummary } from "../../../test/support/runDemo.ts"
import { brokers } from "./helpers.ts"

describe("demo pipeline on Kafka", () => {
  it(
    "runs through the broker switch to the expected outcome",
    demoRunsOn("kafka", "kafka", {
      env: () => ({ KAFKA_BROKERS: brokers() }),
      extra: (output) => expect(output).toMatch(expectedSummary(300).duplicatesSkipped)
    }),
    240_000
  )
})
