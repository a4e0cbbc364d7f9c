/**
 * Lanes: how deliveries reach handlers under a concurrency bound. One handler at a time runs per chunk (no
 * per-element stream step); `ordering: "none"` runs up to `concurrency` at once in any order; `"key"` and
 * `"partition"` hash each delivery's key (or broker lane) into one of `concurrency` sequential lanes:
 * in order within a lane, parallel across lanes, with the stream's own backpressure.
 */
import { Effect, Metric, Stream } from "effect"
import type { SubscribeError } from "../../Errors.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Telemetry from "../../Telemetry.ts"
import { keyHash } from "../hash.ts"
import type { LanesConfig } from "./options.ts"

/** The lane key of a delivery: its broker lane (`"partition"`) or its key, else its id (`"key"`). */
export const laneKey = (ordering: LanesConfig["ordering"]) =>
  ordering === "partition"
    ? <A>(delivery: Delivery<A>): string => delivery.envelope.coordinates.lane ?? ""
    : <A>(delivery: Delivery<A>): string => delivery.envelope.key ?? delivery.envelope.id

/** The lane (0 … concurrency - 1) of a key. */
export const laneOf = (key: string, concurrency: number): number => keyHash(key) % concurrency

/** Runs `begin` on every delivery of the stream, within the lanes' bound and order; counts what it takes (`metrics`). */
export const processAll = <A, E, R>(
  config: LanesConfig,
  begin: (delivery: Delivery<A>) => Effect.Effect<unknown, E, R>,
  metrics = true
) => {
  const { concurrency, ordering } = config
  const handleChunk = metrics
    ? (chunk: ReadonlyArray<Delivery<A>>) =>
      Effect.andThen(Metric.update(Telemetry.consumed, chunk.length), Effect.forEach(chunk, begin, { discard: true }))
    : (chunk: ReadonlyArray<Delivery<A>>) => Effect.forEach(chunk, begin, { discard: true })
  if (concurrency === 1) {
    return (deliveries: Stream.Stream<Delivery<A>, SubscribeError>): Effect.Effect<void, E | SubscribeError, R> =>
      Stream.runForEachArray(deliveries, handleChunk)
  }
  if (ordering === "none") {
    const one = metrics ? (delivery: Delivery<A>) => Effect.andThen(Metric.update(Telemetry.consumed, 1), begin(delivery)) : begin
    const options = { concurrency, unordered: true } as const
    return (deliveries: Stream.Stream<Delivery<A>, SubscribeError>): Effect.Effect<void, E | SubscribeError, R> =>
      Stream.runDrain(Stream.mapEffect(deliveries, one, options))
  }
  const key = laneKey(ordering)
  return (deliveries: Stream.Stream<Delivery<A>, SubscribeError>): Effect.Effect<void, E | SubscribeError, R> =>
    deliveries.pipe(
      Stream.groupByKey((delivery) => laneOf(key(delivery), concurrency), { bufferSize: config.bufferSize }),
      Stream.mapEffect(([, lane]) => Stream.runForEachArray(lane, handleChunk), { concurrency: "unbounded" }),
      Stream.runDrain
    )
}
