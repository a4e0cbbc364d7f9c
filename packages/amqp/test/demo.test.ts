import { describe, expect, it } from "vitest"
import { demoRunsOn, expectedSummary } from "../../../test/support/runDemo.ts"

describe("demo pipeline on RabbitMQ", () => {
  it(
    "runs through the broker switch to the expected outcome",
    demoRunsOn("amqp", "rabbitmq", { extra: (output) => expect(output).toMatch(expectedSummary(300).duplicatesSkipped) }),
    180_000
  )
})
