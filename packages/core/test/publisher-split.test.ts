/** `splitChunks`, which keeps `Publisher.sink`'s grouping linear in the size of the chunks it is given. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { splitChunks } from "../src/internal/publish/split.ts"

const chunksOf = (input: ReadonlyArray<ReadonlyArray<number>>, size: number) =>
  Stream.fromArrays(...input).pipe(splitChunks(size), Stream.chunks, Stream.runCollect)

const numbers = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

describe("splitChunks", () => {
  it.effect("splits only the chunks larger than the size, into pieces of the size and the rest, in order", () =>
    Effect.gen(function*() {
      const input = [numbers(0, 3), numbers(3, 1200), numbers(1203, 2), numbers(1205, 500), numbers(1705, 501)]
      const output = yield* chunksOf(input, 500)
      assert.deepStrictEqual(output.map((chunk) => chunk.length), [3, 500, 500, 200, 2, 500, 500, 1])
      assert.deepStrictEqual(output.flat(), numbers(0, 2206))
    }))

  it.effect("passes a chunk that fits as it is (the same array: no copy, nothing held back)", () =>
    Effect.gen(function*() {
      const small = numbers(0, 10)
      const output = yield* chunksOf([small, numbers(10, 1)], 500)
      assert.isTrue(Object.is(output[0], small))
      assert.deepStrictEqual(output.map((chunk) => chunk.length), [10, 1])
    }))

  it.effect("treats a size below 1 or NaN as 1, and rounds a fractional size down", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* chunksOf([numbers(0, 3)], 0)).map((c) => c.length), [1, 1, 1])
      assert.deepStrictEqual((yield* chunksOf([numbers(0, 3)], Number.NaN)).map((c) => c.length), [1, 1, 1])
      assert.deepStrictEqual((yield* chunksOf([numbers(0, 5)], 2.7)).map((c) => c.length), [2, 2, 1])
    }))
})
