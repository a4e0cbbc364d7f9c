/**
 * Conformance cases for the codec path users call: values of Schemas that are not plain JSON (Date,
 * BigInt, ReadonlySet, ReadonlyMap, Option, NaN / ±Infinity, Uint8Array, tagged unions, optional fields)
 * published with the typed `Publisher` and read back with the typed `Subscriber` must come back equal, on
 * every broker. Registered by `Conformance.suite`.
 *
 * @since 0.2.0
 */
import type { Vitest } from "@effect/vitest"
import { assert } from "@effect/vitest"
import type { Duration } from "effect"
import { Arbitrary, Clock, Effect, Result, Schema, Stream } from "effect"
import type { Broker } from "../../Broker.ts"
import * as Publisher from "../../Publisher.ts"
import * as Subscriber from "../../Subscriber.ts"
import * as Topic from "../../Topic.ts"

/**
 * What the cases need from the suite that registers them.
 *
 * @since 0.2.0
 */
export interface Context {
  /** A fresh destination name (provisioned when the broker needs it). */
  readonly fresh: (label: string) => Effect.Effect<string, never, Broker>
  /** How long a read waits for the next message before it gives up. */
  readonly idle: Duration.Duration
}

const Event = Schema.Union([
  Schema.TaggedStruct("Placed", { at: Schema.Date, total: Schema.BigInt }),
  Schema.TaggedStruct("Cancelled", {
    reason: Schema.optionalKey(Schema.String),
    refunds: Schema.ReadonlySet(Schema.Number)
  })
])

/** Every field is a Schema whose value has no plain JSON form, or a union / optional around one. */
const Value = Schema.Struct({
  n: Schema.Int,
  at: Schema.Date,
  tags: Schema.ReadonlySet(Schema.String),
  discount: Schema.Option(Schema.Number),
  total: Schema.BigInt,
  score: Schema.Number,
  stock: Schema.ReadonlyMap(Schema.String, Schema.Number),
  note: Schema.optionalKey(Schema.String),
  event: Event,
  blob: Schema.Uint8Array
})
type Value = typeof Value.Type

// JSON has no -0, so the equivalence Schema derives (which equates -0 and 0) is the right equality here.
const equivalent = Schema.toEquivalence(Value)

/** Arbitrary values from the Schema itself, plus the edge numbers a generator may not hit. */
const sample = (seed: number, count: number) =>
  Effect.map(
    Effect.orDie(Arbitrary.sampleEffect(Arbitrary.schema(Value), { count, seed })),
    (values): ReadonlyArray<Value> =>
      values.map((value, n) => ({ ...value, n, score: n === 0 ? Number.NaN : n === 1 ? Infinity : n === 2 ? -Infinity : value.score }))
  )

/**
 * Registers the codec cases in a conformance suite's `layer(...)` block.
 *
 * @since 0.2.0
 */
export const cases = (
  it: Vitest.MethodsNonLive<Broker | Publisher.Publisher | Subscriber.Subscriber>,
  context: Context
): void => {
  it.effect("typed codec: Date, BigInt, Set, Map, Option, NaN and bytes values published with Publisher come back equal through Subscriber", () =>
    Effect.gen(function*() {
      const seed = (yield* Clock.currentTimeMillis) % 1_000_000
      const values = yield* sample(seed, 60)
      const destination = yield* context.fresh("codec")
      const topic = Topic.make(destination, Value, { key: (value) => `k${value.n % 4}` })
      const deliveries = yield* Subscriber.Subscriber.use((subscriber) => subscriber.open(topic, { group: "codec" }))
      yield* Publisher.publishAll(topic, values)
      const received = new Map<number, Value>()
      const undecodable: Array<string> = []
      yield* deliveries.pipe(
        Stream.timeout(context.idle),
        Stream.mapEffect((delivery) =>
          Effect.map(delivery.ack, () => {
            if (Result.isSuccess(delivery.value)) received.set(delivery.value.success.n, delivery.value.success)
            else undecodable.push(delivery.value.failure.message)
            return received.size + undecodable.length >= values.length
          })
        ),
        Stream.takeUntil((done) => done),
        Stream.runDrain
      )
      assert.deepStrictEqual(undecodable, [], `seed ${seed}: values the consumer could not decode`)
      assert.strictEqual(received.size, values.length, `seed ${seed}: values missing`)
      for (const value of values) {
        const back = received.get(value.n)
        assert.isTrue(back !== undefined && equivalent(back, value), `seed ${seed}: value ${value.n} changed on the way`)
      }
    }))
}
