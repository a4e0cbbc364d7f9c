/**
 * Splits a stream's chunks that are larger than a batch into batch-sized ones; smaller chunks pass as they
 * are (nothing is held back, so a linger still fires on a slow stream).
 *
 * Why: `Stream.groupedWithin` takes its groups with `Sink.take`, which copies the rest of a chunk it does
 * not finish into a new array, and does so again for the next group. One large chunk of n elements then
 * costs about n² / (2 × size) element copies, and `Stream.fromIterable(array)` emits the whole array as one
 * chunk: 100,000 orders in batches of 500 were ~10 million copies (~800 B allocated per message).
 */
import { Effect, Stream } from "effect"
import type { NonEmptyArray, NonEmptyReadonlyArray } from "effect/Array"

/** The chunks of `stream`, none larger than `batchSize` (rounded down; `NaN` and sizes below 1 count as 1, as in `groupedWithin`). */
export const splitChunks = (batchSize: number) => <A, E, R>(stream: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> => {
  const size = Number.isNaN(batchSize) || batchSize < 1 ? 1 : Math.floor(batchSize)
  return Stream.transformPull(stream, (pull) =>
    Effect.sync(() => {
      let current: NonEmptyReadonlyArray<A> | undefined
      let index = 0
      const rest = Effect.sync((): NonEmptyReadonlyArray<A> => {
        const chunk = current!
        const end = Math.min(index + size, chunk.length)
        const piece: NonEmptyArray<A> = [chunk[index]!]
        for (let i = index + 1; i < end; i++) piece.push(chunk[i]!)
        index = end
        if (end === chunk.length) current = undefined
        return piece
      })
      return Effect.suspend(() => {
        if (current !== undefined) return rest
        return Effect.flatMap(pull, (chunk) => {
          if (chunk.length <= size) return Effect.succeed(chunk)
          current = chunk
          index = 0
          return rest
        })
      })
    }))
}
