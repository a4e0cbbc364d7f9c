import { describe, expect, it } from "vitest"
import { demoRunsOn, expectedSummary } from "../../../test/support/runDemo.ts"
import { url } from "./helpers.ts"

describe("demo pipeline on Redis Streams", () => {
  it(
    "runs through the broker switch to the expected outcome",
    demoRunsOn("redis", "redis", {
      env: () => ({ REDIS_URL: url }),
      extra: (output) => expect(output).toMatch(expectedSummary(300).emailed)
    }),
    180_000
  )
})
