import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import { decode } from "../src/internal/consumer/decode.ts"
import type { DecodeConfig } from "../src/internal/consumer/options.ts"
import { handled, Outcome } from "../src/internal/consumer/outcome.ts"
import type { ValueStep } from "../src/internal/consumer/step.ts"
import * as Fake from "./helpers/fakeDelivery.ts"
import { fakePark } from "./helpers/fakePark.ts"

const config = (overrides: Partial<DecodeConfig> = {}): DecodeConfig => ({
  onFailure: "dead-letter",
  onUnknownType: "dead-letter",
  ...overrides
})

/** The next step: records the values it was handed. */
const recordingNext = () => {
  const values: Array<number> = []
  const next: ValueStep<number, never> = (_delivery, value) => Effect.sync(() => (values.push(value), handled))
  return { next, values }
}

describe("consumer stage: decode", () => {
  it.effect("a decoded delivery goes on with its value; nothing is settled by the stage", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next, values } = recordingNext()
      const fake = Fake.decoded(7)
      const outcome = yield* decode(config(), park)(next)(fake.delivery)
      assert.deepStrictEqual(values, [7])
      assert.strictEqual(outcome, handled)
      assert.deepStrictEqual(fake.settlements, [])
      assert.strictEqual(parked.length, 0)
    }))

  it.effect("undecodable, onFailure dead-letter: parked with the codec's message, its tag and the delivery's attempt", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next, values } = recordingNext()
      const fake = Fake.undecodable<number>("payload is not valid JSON", { envelope: { attempt: 3 } })
      const outcome = yield* decode(config(), park)(next)(fake.delivery)
      assert.deepStrictEqual(values, [])
      assert.strictEqual(outcome._tag, "DeadLettered")
      assert.deepStrictEqual(parked.map((p) => p.failure), [{ reason: "payload is not valid JSON", errorTag: "DecodeError", attempts: 3 }])
    }))

  it.effect("undecodable, onFailure skip: acked, Skipped with the DecodeError, never parked", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next, values } = recordingNext()
      const fake = Fake.undecodable<number>("bad")
      const outcome = yield* decode(config({ onFailure: "skip" }), park)(next)(fake.delivery)
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
      assert.isTrue(Outcome.$is("Skipped")(outcome))
      if (Outcome.$is("Skipped")(outcome)) assert.strictEqual(outcome.error.message, "bad")
      assert.deepStrictEqual(values, [])
      assert.strictEqual(parked.length, 0)
    }))

  it.effect("undecodable, onFailure fail: the stage fails with the DecodeError and settles nothing", () =>
    Effect.gen(function*() {
      const { park, parked } = fakePark<number>()
      const { next } = recordingNext()
      const fake = Fake.undecodable<number>("bad")
      const exit = yield* Effect.exit(decode(config({ onFailure: "fail" }), park)(next)(fake.delivery))
      const error = Exit.findErrorOption(exit)
      assert.isTrue(Option.isSome(error) && error.value._tag === "DecodeError" && error.value.message === "bad")
      assert.deepStrictEqual(fake.settlements, [])
      assert.strictEqual(parked.length, 0)
    }))

  it.effect("an unknown event type is ignored (acked) or dead-lettered as UnknownEventType, whatever onFailure says", () =>
    Effect.gen(function*() {
      const ignore = fakePark<number>()
      const ignored = Fake.undecodable<number>("unknown event type Refunded", { unknownType: "Refunded" })
      const first = yield* decode(config({ onUnknownType: "ignore", onFailure: "fail" }), ignore.park)(recordingNext().next)(ignored.delivery)
      assert.deepStrictEqual(first, Outcome.Ignored({ reason: "unknown-type" }))
      assert.deepStrictEqual(ignored.settlements, [{ _tag: "ack" }])
      assert.strictEqual(ignore.parked.length, 0)

      const park = fakePark<number>()
      const parkedOne = Fake.undecodable<number>("unknown event type Refunded", { unknownType: "Refunded" })
      yield* decode(config({ onFailure: "skip" }), park.park)(recordingNext().next)(parkedOne.delivery)
      assert.deepStrictEqual(park.parked.map((p) => p.failure.errorTag), ["UnknownEventType"])
      assert.deepStrictEqual(parkedOne.settlements, [])
    }))
})
