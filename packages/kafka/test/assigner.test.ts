/**
 * Property tests (no broker) of the sticky, subscription-aware assigner's split, and of its user data.
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { assign, decodeOwned, encodeOwned, type Member } from "../src/internal/assigner.ts"

const topicNames = ["a", "b", "c"] as const

/** Topics with partition counts, and members subscribed to some of them, owning arbitrary partitions. */
const group = fc
  .record({
    sizes: fc.record({ a: fc.integer({ min: 0, max: 12 }), b: fc.integer({ min: 0, max: 12 }), c: fc.integer({ min: 0, max: 12 }) }),
    members: fc.uniqueArray(
      fc.record({
        memberId: fc.string({ minLength: 1, maxLength: 6 }),
        topics: fc.subarray([...topicNames], { minLength: 1 }),
        owned: fc.dictionary(fc.constantFrom(...topicNames), fc.array(fc.integer({ min: -2, max: 15 }), { maxLength: 8 }))
      }),
      { minLength: 1, maxLength: 7, selector: (m) => m.memberId }
    )
  })

const partitionsOf = (sizes: Readonly<Record<string, number>>) => (topic: string) =>
  Array.from({ length: sizes[topic] ?? 0 }, (_, i) => i)

describe("kafka assigner (properties)", () => {
  it("each partition of a topic goes to exactly one member subscribed to it; the split is even (sizes differ by at most 1)", () => {
    fc.assert(
      fc.property(group, ({ members, sizes }) => {
        const result = assign(members, partitionsOf(sizes))
        assert.deepStrictEqual([...result.keys()].sort(), members.map((m) => m.memberId).sort())
        for (const topic of topicNames) {
          const subscribers = members.filter((m) => m.topics.includes(topic))
          const all = subscribers.flatMap((m) => result.get(m.memberId)?.[topic] ?? [])
          const expected = subscribers.length === 0 ? [] : partitionsOf(sizes)(topic)
          assert.deepStrictEqual([...all].sort((x, y) => x - y), expected, `topic ${topic}: every partition exactly once`)
          for (const m of members) {
            if (!m.topics.includes(topic)) assert.isUndefined(result.get(m.memberId)?.[topic], "not subscribed, nothing assigned")
          }
          const counts = subscribers.map((m) => (result.get(m.memberId)?.[topic] ?? []).length)
          if (counts.length > 0) assert.isAtMost(Math.max(...counts) - Math.min(...counts), 1)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("sticky: assigning again from the result moves nothing; a member joining takes only its share", () => {
    fc.assert(
      fc.property(group, fc.string({ minLength: 7, maxLength: 8 }), ({ members, sizes }, newcomer) => {
        const first = assign(members, partitionsOf(sizes))
        const owning: Array<Member> = members.map((m) => ({ ...m, owned: first.get(m.memberId) ?? {} }))
        const again = assign(owning, partitionsOf(sizes))
        for (const m of owning) assert.deepStrictEqual(again.get(m.memberId), first.get(m.memberId))
        // a newcomer on every topic: nobody gains partitions, and only members above the new quota lose some
        const joined = assign([...owning, { memberId: newcomer, topics: [...topicNames], owned: {} }], partitionsOf(sizes))
        for (const m of owning) {
          for (const topic of topicNames) {
            const before = new Set(first.get(m.memberId)?.[topic] ?? [])
            const after = joined.get(m.memberId)?.[topic] ?? []
            for (const p of after) assert.isTrue(before.has(p), `${m.memberId} gained ${topic}/${p} when another member joined`)
          }
        }
      }),
      { numRuns: 300 }
    )
  })

  it("user data round-trips; anything else is owning nothing", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.array(fc.integer())), (owned) => {
        assert.deepStrictEqual(decodeOwned(encodeOwned(owned)), owned)
      })
    )
    for (const bad of ["", "not json", "[1,2]", "{\"t\":[\"x\"]}", "{\"t\":1.5}", "null"]) {
      assert.deepStrictEqual(decodeOwned(Buffer.from(bad)), {}, bad)
    }
    assert.deepStrictEqual(decodeOwned(null), {})
    assert.deepStrictEqual(decodeOwned(undefined), {})
  })
})
