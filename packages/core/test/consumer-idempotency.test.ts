import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as H from "../src/Headers.ts"
import * as Idempotency from "../src/Idempotency.ts"
import { idempotency, ledger, remember } from "../src/internal/consumer/idempotency.ts"
import { duplicate, handled, redriveForAnotherGroup } from "../src/internal/consumer/outcome.ts"
import { redrive, redriveKey } from "../src/internal/consumer/redrive.ts"
import type { Step } from "../src/internal/consumer/step.ts"
import * as Fake from "./helpers/fakeDelivery.ts"

const counting = () => {
  const reached: Array<string> = []
  const next: Step<number, never, never> = (delivery) => Effect.sync(() => (reached.push(delivery.envelope.id), handled))
  return { next, reached }
}

const redriven = (group: string) => ({ [H.redriveGroup]: group, [H.redrivenAt]: "1700000000000" })

describe("consumer stage: idempotency", () => {
  it.effect("off: no ledger, and the stage is the next step itself", () =>
    Effect.gen(function*() {
      assert.isUndefined(yield* ledger(undefined, "orders", "g"))
      const { next } = counting()
      assert.strictEqual(idempotency(undefined)(next), next)
    }))

  it.effect("an id the group remembered is acked as a duplicate without running the rest; a new one goes on", () =>
    Effect.gen(function*() {
      const open = yield* ledger({}, "orders", "g")
      const { next, reached } = counting()
      const stage = idempotency(open)(next)
      const first = Fake.decoded(1, { envelope: { id: "a" } })
      assert.strictEqual(yield* stage(first.delivery), handled)
      yield* remember(open)(first.delivery)
      const again = Fake.decoded(1, { envelope: { id: "a" } })
      assert.strictEqual(yield* stage(again.delivery), duplicate)
      assert.deepStrictEqual(again.settlements, [{ _tag: "ack" }])
      assert.deepStrictEqual(first.settlements, [])
      assert.deepStrictEqual(reached, ["a"])
    }))

  it.effect("ledgers in one store are per destination and group: another's record does not make a duplicate", () =>
    Effect.gen(function*() {
      const a = yield* Idempotency.ledger({}, "orders", "a")
      const b = yield* Idempotency.ledger({}, "orders", "b")
      const other = yield* Idempotency.ledger({}, "refunds", "a")
      const again = yield* Idempotency.ledger({}, "orders", "a")
      yield* a.remember("x")
      assert.isTrue(yield* again.seen("x"), "the shared store lost the record")
      assert.isFalse(yield* b.seen("x"))
      assert.isFalse(yield* other.seen("x"))
    }).pipe(Effect.provide(KeyValueStore.layerMemory)))

  it.effect("ids made up per delivery are never looked up nor recorded", () =>
    Effect.gen(function*() {
      const open = (yield* ledger({}, "orders", "g"))!
      const { next, reached } = counting()
      const generated = Fake.decoded(1, { envelope: { id: "gen-1", idSource: "generated" } })
      yield* remember(open)(generated.delivery)
      assert.isFalse(yield* open.seen("gen-1"))
      yield* open.remember("gen-1")
      yield* idempotency(open)(next)(generated.delivery)
      assert.deepStrictEqual(reached, ["gen-1"], "a generated id was taken for a duplicate")
    }))

  it.effect("this group's redriven copy is looked up by its redrive, and remembered under both keys", () =>
    Effect.gen(function*() {
      const open = (yield* ledger({}, "orders", "g"))!
      yield* open.remember("a") // recorded when the original was parked
      const { next, reached } = counting()
      const copy = Fake.decoded(1, { envelope: { id: "a", headers: redriven("g") } })
      assert.strictEqual(yield* idempotency(open)(next)(copy.delivery), handled)
      yield* remember(open)(copy.delivery)
      assert.isTrue(yield* open.seen(redriveKey(copy.delivery.envelope)!))
      const redelivered = Fake.decoded(1, { envelope: { id: "a", headers: redriven("g") } })
      assert.strictEqual(yield* idempotency(open)(next)(redelivered.delivery), duplicate)
      assert.deepStrictEqual(reached, ["a"])
    }))
})

describe("consumer stage: redrive", () => {
  it("redriveKey: only a redriven copy has one, per redrive", () => {
    assert.isUndefined(redriveKey(Fake.envelope()))
    assert.strictEqual(redriveKey(Fake.envelope({ id: "a", headers: redriven("g") })), "a#redriven-at:1700000000000")
  })

  it.effect("a redriven copy for another group is acked and ignored; one for this group and plain messages go on", () =>
    Effect.gen(function*() {
      const { next, reached } = counting()
      const stage = redrive("billing")(next)
      const other = Fake.decoded(1, { envelope: { id: "for-email", headers: redriven("email") } })
      assert.strictEqual(yield* stage(other.delivery), redriveForAnotherGroup)
      assert.deepStrictEqual(other.settlements, [{ _tag: "ack" }])
      yield* stage(Fake.decoded(1, { envelope: { id: "for-billing", headers: redriven("billing") } }).delivery)
      yield* stage(Fake.decoded(1, { envelope: { id: "plain" } }).delivery)
      assert.deepStrictEqual(reached, ["for-billing", "plain"])
    }))
})
