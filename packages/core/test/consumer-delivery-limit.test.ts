import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { deliveryLimit, pastLimit } from "../src/internal/consumer/deliveryLimit.ts"
import { handled } from "../src/internal/consumer/outcome.ts"
import type { Step } from "../src/internal/consumer/step.ts"
import * as Fake from "./helpers/fakeDelivery.ts"
import { fakePark } from "./helpers/fakePark.ts"

const counting = () => {
  const reached = { count: 0 }
  const next: Step<number, never, never> = () => Effect.sync(() => (reached.count++, handled))
  return { next, reached }
}

describe("consumer stage: delivery limit", () => {
  it.effect("without a limit, or within it, the delivery goes on", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next, reached } = counting()
      const stage = deliveryLimit(park)(next)
      yield* stage(Fake.decoded(1, { envelope: { attempt: 40 } }).delivery)
      yield* stage(Fake.decoded(1, { deliveryLimit: 3, envelope: { attempt: 3 } }).delivery)
      assert.strictEqual(reached.count, 2)
      assert.strictEqual(parked.length, 0)
    }))

  it.effect("past the limit: parked as DeliveryLimitExceeded (attempts = earlier deliveries), the rest never runs", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next, reached } = counting()
      const fake = Fake.decoded(1, { deliveryLimit: 3, envelope: { attempt: 4 } })
      const outcome = yield* deliveryLimit(park)(next)(fake.delivery)
      assert.strictEqual(outcome._tag, "DeadLettered")
      assert.strictEqual(reached.count, 0)
      assert.strictEqual(parked.length, 1)
      const failure = parked[0]!.failure
      assert.strictEqual(failure.errorTag, "DeliveryLimitExceeded")
      assert.strictEqual(failure.attempts, 3)
      assert.include(failure.reason, "delivered 4 times, past the broker's limit of 3")
      assert.deepStrictEqual(failure, pastLimit(fake.delivery, 3))
    }))

  it.effect("an undecodable delivery past the limit is parked for the limit, before decoding", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next } = counting()
      yield* deliveryLimit(park)(next)(Fake.undecodable<number>("bad", { deliveryLimit: 1, envelope: { attempt: 2 } }).delivery)
      assert.deepStrictEqual(parked.map((p) => p.failure.errorTag), ["DeliveryLimitExceeded"])
    }))
})
