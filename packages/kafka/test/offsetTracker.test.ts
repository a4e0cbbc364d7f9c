/**
 * Property tests (no broker) of the pure offset tracker: whatever the order of settlements, the offset to
 * commit is the end of the longest acked prefix of what was delivered, never past an unsettled offset, and
 * never moves back; nacks settle nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as Tracker from "../src/internal/offsetTracker.ts"

/** Ascending delivered offsets with gaps (compaction, transaction markers). */
const deliveredOffsets = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 60 })
  .chain((gaps) =>
    fc.integer({ min: 0, max: 1_000_000 }).map((start) => {
      const out: Array<number> = []
      let at = start
      for (const gap of gaps) {
        out.push(at)
        at += gap
      }
      return out
    })
  )

type Step = { readonly kind: "ack" | "nack"; readonly index: number }

/** Delivered offsets and a random sequence of settlements of them (repeats and nacks included). */
const scenario = deliveredOffsets.chain((offsets) =>
  fc
    .array(
      fc.record({ kind: fc.constantFrom<"ack" | "nack">("ack", "ack", "nack"), index: fc.nat({ max: offsets.length - 1 }) }),
      { maxLength: 150 }
    )
    .map((steps): readonly [ReadonlyArray<number>, ReadonlyArray<Step>] => [offsets, steps])
)

/** The model: the longest acked prefix's end, or (nothing in it yet) the first offset once anything is acked. */
const expectedCommit = (offsets: ReadonlyArray<number>, acked: ReadonlySet<number>): number | undefined => {
  let n = 0
  while (n < offsets.length && acked.has(offsets[n]!)) n++
  if (n > 0) return offsets[n - 1]! + 1
  return acked.size > 0 ? offsets[0] : undefined
}

const deliverAll = (offsets: ReadonlyArray<number>) => offsets.reduce(Tracker.deliver, Tracker.empty)

describe("kafka offset tracker (properties)", () => {
  it("any order of settlements: the commit is the longest acked prefix + 1, never past an unsettled offset, monotone", () => {
    fc.assert(
      fc.property(scenario, ([offsets, steps]) => {
        let tracker = deliverAll(offsets)
        const acked = new Set<number>()
        let previous: number | undefined
        for (const step of steps) {
          const offset = offsets[step.index]!
          if (step.kind === "ack") {
            tracker = Tracker.ack(tracker, offset)
            acked.add(offset)
          } else {
            tracker = Tracker.nack(tracker, offset)
          }
          const commit = Tracker.commitOffset(tracker)
          assert.strictEqual(commit, expectedCommit(offsets, acked))
          // never beyond an unsettled offset
          const firstUnsettled = offsets.find((o) => !acked.has(o))
          if (commit !== undefined && firstUnsettled !== undefined) assert.isAtMost(commit, firstUnsettled)
          // monotone
          if (previous !== undefined && commit !== undefined) assert.isAtLeast(commit, previous)
          if (previous !== undefined) assert.isDefined(commit)
          previous = commit
          // what is acked above the commit travels in the metadata, ascending
          const above = Tracker.ackedAbove(tracker)
          assert.deepStrictEqual(above, offsets.filter((o) => acked.has(o) && commit !== undefined && o > commit))
          assert.strictEqual(Tracker.outstanding(tracker), offsets.filter((o) => !acked.has(o)).length)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("every offset acked: the commit is the last offset + 1 and nothing is pending", () => {
    fc.assert(
      fc.property(deliveredOffsets.chain((offsets) => fc.shuffledSubarray(offsets, { minLength: offsets.length }).map((order) => [offsets, order] as const)), ([offsets, order]) => {
        const tracker = order.reduce(Tracker.ack, deliverAll(offsets))
        assert.strictEqual(Tracker.commitOffset(tracker), offsets[offsets.length - 1]! + 1)
        assert.deepStrictEqual(tracker.pending, [])
        assert.strictEqual(Tracker.outstanding(tracker), 0)
      })
    )
  })

  it("deliveries interleaved with acks (the runloop's order) give the same commit as delivering first", () => {
    fc.assert(
      fc.property(scenario, ([offsets, steps]) => {
        // deliver each offset just before its first settlement (or at the end)
        let interleaved = Tracker.empty
        let delivered = 0
        const deliverUpTo = (index: number) => {
          while (delivered <= index) interleaved = Tracker.deliver(interleaved, offsets[delivered++]!)
        }
        let upfront = deliverAll(offsets)
        for (const step of steps) {
          deliverUpTo(step.index)
          if (step.kind === "ack") {
            interleaved = Tracker.ack(interleaved, offsets[step.index]!)
            upfront = Tracker.ack(upfront, offsets[step.index]!)
          }
        }
        deliverUpTo(offsets.length - 1)
        assert.strictEqual(Tracker.commitOffset(interleaved), Tracker.commitOffset(upfront))
        assert.deepStrictEqual(Tracker.ackedAbove(interleaved), Tracker.ackedAbove(upfront))
      })
    )
  })

  it("nacks and repeated acks change nothing; offsets never delivered and redeliveries are ignored", () => {
    fc.assert(
      fc.property(scenario, ([offsets, steps]) => {
        let tracker = deliverAll(offsets)
        for (const step of steps) if (step.kind === "ack") tracker = Tracker.ack(tracker, offsets[step.index]!)
        assert.strictEqual(Tracker.nack(tracker, offsets[0]!), tracker)
        for (const offset of offsets) {
          const again = Tracker.ack(tracker, offset)
          assert.strictEqual(Tracker.commitOffset(Tracker.ack(again, offset)), Tracker.commitOffset(again))
        }
        const last = offsets[offsets.length - 1]!
        assert.strictEqual(Tracker.deliver(tracker, offsets[0]!), tracker, "a redelivery is not a new delivery")
        assert.strictEqual(Tracker.ack(tracker, last + 1000), tracker, "never delivered")
        assert.isTrue(Tracker.isNew(tracker, last + 1))
        assert.isFalse(Tracker.isNew(tracker, last))
      })
    )
  })

  it("the examples: out-of-order acks wait for the gap", () => {
    let t = [10, 11, 12, 14].reduce(Tracker.deliver, Tracker.empty)
    assert.strictEqual(Tracker.commitOffset(t), undefined)
    t = Tracker.ack(t, 12)
    assert.strictEqual(Tracker.commitOffset(t), 10)
    assert.deepStrictEqual(Tracker.ackedAbove(t), [12])
    t = Tracker.ack(t, 10)
    assert.strictEqual(Tracker.commitOffset(t), 11)
    t = Tracker.ack(t, 11)
    assert.strictEqual(Tracker.commitOffset(t), 13)
    t = Tracker.ack(t, 14)
    assert.strictEqual(Tracker.commitOffset(t), 15)
    assert.strictEqual(t.first, 10)
    assert.strictEqual(t.next, 15)
  })

  it("deliverMany and ackMany (one copy per turn) end where deliver and ack one by one end", () => {
    const view = (t: Tracker.OffsetTracker) => ({
      pending: [...t.pending],
      acked: [...t.acked].sort((a, b) => a - b),
      prefixEnd: t.prefixEnd,
      first: t.first,
      next: t.next,
      commit: Tracker.commitOffset(t),
      above: Tracker.ackedAbove(t)
    })
    fc.assert(
      fc.property(
        deliveredOffsets,
        fc.array(fc.array(fc.nat({ max: 200 }), { maxLength: 12 }), { maxLength: 12 }),
        fc.nat({ max: 20 }),
        (offsets, turns, redelivered) => {
          // a redelivery of an old offset in the middle is ignored by both
          const delivering = [...offsets.slice(0, redelivered), ...(redelivered > 0 ? [offsets[0]!] : []), ...offsets.slice(redelivered)]
          let one = delivering.reduce(Tracker.deliver, Tracker.empty)
          let many = Tracker.deliverMany(Tracker.empty, delivering)
          assert.deepStrictEqual(view(many), view(one))
          for (const turn of turns) {
            const acks = turn.map((i) => offsets[i % offsets.length]! + (i % 7 === 0 ? 1_000_000_000 : 0))
            const before = many
            one = acks.reduce(Tracker.ack, one)
            many = Tracker.ackMany(many, acks)
            assert.deepStrictEqual(view(many), view(one))
            if (view(one).acked.length === view(before).acked.length && one.prefixEnd === before.prefixEnd) {
              assert.strictEqual(many.version, before.version, "nothing new: same version")
            } else assert.isAbove(many.version, before.version)
          }
        }
      )
    )
  })
})
