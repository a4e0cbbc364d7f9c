import { describe, expect, it } from "vitest"
import { demoRunsOn } from "../../../test/support/runDemo.ts"

describe("demo pipeline on NATS JetStream", () => {
  it(
    "runs through the broker switch to the expected outcome",
    // JetStream deduplicates the re-published orders by message id before any consumer sees them.
    demoRunsOn("nats", "nats-jetstream", { extra: (output) => expect(output).toContain("6 deduplicated by the broker") }),
    180_000
  )
})
