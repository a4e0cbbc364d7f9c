import { describe, expect, it } from "@effect/vitest"
import { Envelope } from "@switchyard/core"
import { randomUuid } from "../src/internal/uuid.ts"

const v4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe("message ids (flat UUID v4)", () => {
  it("are RFC 4122 version 4 UUIDs, all distinct, over many pool refills", () => {
    const ids = Array.from({ length: 20_000 }, randomUuid)
    for (const id of ids) expect(id).toMatch(v4)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it("use every hex digit in every random position (the digits come from random bytes, not a fixed table slot)", () => {
    const ids = Array.from({ length: 4_000 }, randomUuid)
    for (let position = 0; position < 36; position++) {
      if ([8, 13, 14, 18, 19, 23].includes(position)) continue // dashes, the version, the variant
      expect(new Set(ids.map((id) => id[position])).size).toBe(16)
    }
    expect(new Set(ids.map((id) => id[19]))).toEqual(new Set(["8", "9", "a", "b"]))
  })

  it("Envelope.makeId gives them", () => {
    expect(Envelope.makeId()).toMatch(v4)
    expect(Envelope.makeId()).not.toBe(Envelope.makeId())
  })
})
