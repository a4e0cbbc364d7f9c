/**
 * The default JSON codec round-trips every Schema that has a JSON form (Schema's canonical JSON codec), and
 * decodes UTF-8 strictly. Properties run through `Codec.json` directly and through the typed publish →
 * `Consumer.run` path on the in-memory broker; `ConformanceCodec` runs the same values on every broker.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Broker, Codec, Consumer, Envelope, MemoryBroker, Publisher, Router, Switchyard, Topic } from "@switchyard/core"
import { PoisonCorpus, TestKit } from "@switchyard/core/testing"
import { Effect, Fiber, Option, Result, Schema } from "effect"
import * as fc from "fast-check"

// JSON has no -0 (`JSON.stringify(-0)` is "0"); every other double, NaN and ±Infinity included, must survive.
const double = fc.double().map((n) => (Object.is(n, -0) ? 0 : n))
const date = fc.date({ noInvalidDate: true })
const finite = double.filter(Number.isFinite)

const Tagged = Schema.Union([
  Schema.TaggedStruct("Placed", { at: Schema.Date, total: Schema.BigInt }),
  Schema.TaggedStruct("Cancelled", { reason: Schema.optionalKey(Schema.String), refunds: Schema.ReadonlySet(Schema.Number) })
])
type Tagged = typeof Tagged.Type
const tagged: fc.Arbitrary<Tagged> = fc.oneof(
  fc.record({ _tag: fc.constant("Placed" as const), at: date, total: fc.bigInt() }, { noNullPrototype: true }),
  fc.record(
    { _tag: fc.constant("Cancelled" as const), reason: fc.string(), refunds: fc.uniqueArray(double).map((xs) => new Set(xs)) },
    { requiredKeys: ["_tag", "refunds"], noNullPrototype: true }
  )
)

const Nested = Schema.Struct({
  id: Schema.String,
  placedAt: Schema.Date,
  tags: Schema.ReadonlySet(Schema.String),
  discount: Schema.Option(Schema.Number),
  total: Schema.BigInt,
  score: Schema.Number,
  stock: Schema.ReadonlyMap(Schema.String, Schema.Number),
  note: Schema.optional(Schema.String),
  lines: Schema.Array(Schema.Struct({ sku: Schema.String, quantity: Schema.Int, at: Schema.optionalKey(Schema.Date) })),
  value: Schema.Union([Schema.String, Schema.Number, Schema.Boolean, Schema.Null]),
  event: Tagged,
  blob: Schema.Uint8Array
})
type Nested = typeof Nested.Type
const nested: fc.Arbitrary<Nested> = fc.record({
  id: fc.string(),
  placedAt: date,
  tags: fc.uniqueArray(fc.string()).map((xs) => new Set(xs)),
  discount: fc.option(double, { nil: undefined }).map(Option.fromUndefinedOr),
  total: fc.bigInt(),
  score: double,
  stock: fc.uniqueArray(fc.tuple(fc.string(), double), { selector: ([k]) => k }).map((kv) => new Map(kv)),
  note: fc.option(fc.string(), { nil: undefined }),
  lines: fc.array(
    fc.record({ sku: fc.string(), quantity: fc.integer(), at: date }, { requiredKeys: ["sku", "quantity"], noNullPrototype: true }),
    { maxLength: 4 }
  ),
  // Finite only: in a union with String, a non-finite number's JSON form ("Infinity") is also a string
  // (documented on `Codec.json`).
  value: fc.oneof(fc.string(), finite, fc.boolean(), fc.constant(null)),
  event: tagged,
  blob: fc.uint8Array()
}, { requiredKeys: ["id", "placedAt", "tags", "discount", "total", "score", "stock", "lines", "value", "event", "blob"], noNullPrototype: true })

interface Case {
  readonly name: string
  readonly schema: Schema.Codec<unknown, unknown, never, never>
  readonly values: fc.Arbitrary<unknown>
}
const cases: ReadonlyArray<Case> = [
  { name: "Date", schema: Schema.Date, values: date },
  { name: "ReadonlySet", schema: Schema.ReadonlySet(Schema.Number), values: fc.uniqueArray(double).map((xs) => new Set(xs)) },
  { name: "Option", schema: Schema.Option(Schema.String), values: fc.option(fc.string(), { nil: undefined }).map(Option.fromUndefinedOr) },
  { name: "BigInt", schema: Schema.BigInt, values: fc.bigInt() },
  { name: "NaN / Infinity numbers", schema: Schema.Number, values: fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity), double) },
  { name: "ReadonlyMap", schema: Schema.ReadonlyMap(Schema.Date, Schema.BigInt), values: fc.array(fc.tuple(date, fc.bigInt())).map((kv) => new Map(kv)) },
  { name: "Uint8Array", schema: Schema.Uint8Array, values: fc.uint8Array() },
  { name: "tagged union", schema: Tagged, values: tagged },
  { name: "nested struct with optional fields and unions", schema: Nested, values: nested }
]

const roundTrip = <A>(codec: Codec.Codec<A>, value: A): A => {
  const bytes = codec.encode(value)
  if (Result.isFailure(bytes)) throw new Error(`encode failed: ${bytes.failure}`)
  const decoded = codec.decode(bytes.success)
  if (Result.isFailure(decoded)) throw new Error(`decode failed: ${decoded.failure.message}`)
  return decoded.success
}

describe("Codec.json round-trips every Schema with a JSON form", () => {
  for (const { name, schema, values } of cases) {
    it(name, () => {
      const codec = Codec.json(schema)
      fc.assert(fc.property(values, (value) => {
        expect(roundTrip(codec, value)).toStrictEqual(value)
      }), { numRuns: 200 })
    })
  }

  it("the wire form is plain JSON: ISO dates, decimal strings for BigInt, arrays for sets", () => {
    const codec = Codec.json(Schema.Struct({ at: Schema.Date, big: Schema.BigInt, set: Schema.ReadonlySet(Schema.Number), n: Schema.Number }))
    const bytes = codec.encode({ at: new Date(0), big: 2n ** 70n, set: new Set([1, 2]), n: NaN })
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) {
      assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(bytes.success)), {
        at: "1970-01-01T00:00:00.000Z",
        big: "1180591620717411303424",
        set: [1, 2],
        n: "NaN"
      })
    }
  })

  it("a schema whose encoded side is already JSON keeps its wire form", () => {
    const codec = Codec.json(Schema.Struct({ at: Schema.DateFromString, n: Schema.Number, s: Schema.String }))
    const bytes = codec.encode({ at: new Date(5), n: 1.5, s: "x" })
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isSuccess(bytes)) {
      assert.strictEqual(new TextDecoder().decode(bytes.success), `{"at":"1970-01-01T00:00:00.005Z","n":1.5,"s":"x"}`)
    }
  })

  it("a value without a JSON form is an encode failure, not a payload", () => {
    assert.isTrue(Result.isFailure(Codec.json(Schema.Date).encode(new Date(Number.NaN))))
    assert.isTrue(Result.isFailure(Codec.json(Schema.Unknown).encode(undefined)))
    assert.isTrue(Result.isFailure(Codec.json(Schema.Any).encode(1n)))
  })

  it("a Router's topic decodes what its encoder wrote (one JSON codec on both sides)", () => {
    const router = Router.make("events", Tagged, { Placed: () => Effect.void, Cancelled: () => Effect.void })
    fc.assert(fc.property(tagged, (value) => {
      expect(roundTrip(router.topic.codec, value)).toStrictEqual(value)
    }), { numRuns: 200 })
  })
})

// A parsed JSON number is finite, so the schema itself decodes what its JSON codec decodes, without the codec's
// per-number links (`Codec.json` takes that path where it is safe): the two must agree on every input.
class Line extends Schema.Class<Line>("Line")({ price: Schema.Number, quantity: Schema.optionalKey(Schema.Number) }) {}
const NumbersOnly = Schema.Struct({
  id: Schema.String,
  total: Schema.Number,
  count: Schema.Int,
  positive: Schema.Number.check(Schema.isGreaterThan(0)),
  parsed: Schema.NumberFromString,
  lines: Schema.Array(Schema.Struct({ price: Schema.Number, quantity: Schema.optionalKey(Schema.Number) })),
  classLine: Line,
  scores: Schema.Record(Schema.String, Schema.Number)
})
const numberLike = fc.oneof(double, fc.constantFrom("NaN", "Infinity", "-Infinity", "1", "x", null, true))
const almostNumbersOnly = fc.record({
  id: fc.oneof(fc.string(), numberLike),
  total: numberLike,
  count: numberLike,
  positive: numberLike,
  parsed: fc.oneof(fc.constantFrom("1.5", "NaN", "x"), numberLike),
  lines: fc.array(fc.record({ price: numberLike, quantity: numberLike }, { requiredKeys: ["price"], noNullPrototype: true }), { maxLength: 3 }),
  classLine: fc.record({ price: numberLike, quantity: numberLike }, { requiredKeys: ["price"], noNullPrototype: true }),
  scores: fc.dictionary(fc.string(), numberLike, { maxKeys: 3, noNullPrototype: true })
}, { requiredKeys: ["id", "total", "count", "positive", "parsed", "lines", "classLine"], noNullPrototype: true })

const viaJsonCodec = <A>(schema: Schema.Codec<A, unknown, never, never>) => {
  const decode = Schema.decodeUnknownResult(Schema.toCodecJson(schema))
  return (text: string) => decode(JSON.parse(text))
}

const agrees = <A>(schema: Schema.Codec<A, unknown, never, never>, text: string) => {
  const expected = viaJsonCodec(schema)(text)
  const actual = Codec.json(schema).decode(Codec.encodeUtf8(text))
  if (Result.isSuccess(expected)) {
    assert.isTrue(Result.isSuccess(actual), text)
    if (Result.isSuccess(actual)) expect(actual.success).toStrictEqual(expected.success)
  } else {
    assert.isTrue(Result.isFailure(actual), text)
    if (Result.isFailure(actual)) assert.strictEqual(actual.failure.message, expected.failure.message)
  }
}

describe("Codec.json decodes exactly what the Schema's JSON codec decodes", () => {
  it("numbers, ints, refined numbers, transformed fields, classes and records: every input, valid or not, the same value or the same error", () => {
    fc.assert(fc.property(almostNumbersOnly, (value) => agrees(NumbersOnly, JSON.stringify(value))), { numRuns: 1_000 })
  })

  it("NaN and ±Infinity written by the codec come back (the JSON codec decides them)", () => {
    const codec = Codec.json(NumbersOnly)
    const value = {
      id: "a",
      total: NaN,
      count: 3,
      positive: Infinity,
      parsed: -Infinity,
      lines: [{ price: -Infinity }],
      classLine: new Line({ price: NaN, quantity: 2 }),
      scores: { x: NaN }
    }
    expect(roundTrip(codec, value)).toStrictEqual(value)
  })

  it("a union whose members differ in JSON keeps the JSON codec's reading (Infinity in Union([Number, String]) is the number)", () => {
    const NumberOrString = Schema.Struct({ v: Schema.Union([Schema.Number, Schema.String]) })
    for (const text of [`{"v":"Infinity"}`, `{"v":"NaN"}`, `{"v":"x"}`, `{"v":1}`, `{"v":null}`]) agrees(NumberOrString, text)
    const decoded = Codec.json(NumberOrString).decode(Codec.encodeUtf8(`{"v":"Infinity"}`))
    assert.isTrue(Result.isSuccess(decoded) && decoded.success.v === Infinity)
  })

  it("tagged unions of numbers agree; untagged unions of structs keep the JSON codec's reading", () => {
    const Tagged2 = Schema.Union([
      Schema.TaggedStruct("A", { n: Schema.Number }),
      Schema.TaggedStruct("B", { n: Schema.String, m: Schema.Number })
    ])
    const member = fc.record({ _tag: fc.constantFrom("A", "B", "C"), n: fc.oneof(numberLike, fc.string()), m: numberLike }, {
      requiredKeys: ["_tag"],
      noNullPrototype: true
    })
    fc.assert(fc.property(member, (value) => agrees(Tagged2, JSON.stringify(value))), { numRuns: 500 })
    const Untagged = Schema.Union([Schema.Struct({ a: Schema.Number }), Schema.Struct({ a: Schema.String })])
    for (const text of [`{"a":"NaN"}`, `{"a":"x"}`, `{"a":2}`]) agrees(Untagged, text)
    const decoded = Codec.json(Untagged).decode(Codec.encodeUtf8(`{"a":"NaN"}`))
    assert.isTrue(Result.isSuccess(decoded) && Number.isNaN(decoded.success.a))
  })

  it("optional fields, dates and tagged unions agree too", () => {
    fc.assert(fc.property(nested, (value) => {
      const bytes = Codec.json(Nested).encode(value)
      if (Result.isSuccess(bytes)) agrees(Nested, new TextDecoder().decode(bytes.success))
    }), { numRuns: 200 })
  })
})

describe("Codec UTF-8 is strict", () => {
  const invalid = [
    Uint8Array.of(0x22, 0xff, 0xfe, 0x22), // bytes that never occur in UTF-8
    Uint8Array.of(0x22, 0xc3, 0x22), // a truncated two-byte sequence
    Uint8Array.of(0x22, 0xed, 0xa0, 0x80, 0x22), // an encoded surrogate
    Uint8Array.of(0x22, 0xc0, 0xaf, 0x22) // an overlong encoding
  ]
  it("json, string and Router codecs fail on invalid UTF-8 instead of decoding replacement characters", () => {
    const router = Router.make("events", Tagged, { Placed: () => Effect.void, Cancelled: () => Effect.void })
    for (const bytes of invalid) {
      const codecs: ReadonlyArray<Pick<Codec.Codec<unknown>, "decode">> = [Codec.json(Schema.String), Codec.string, router.topic.codec]
      for (const codec of codecs) {
        const decoded = codec.decode(bytes)
        assert.isTrue(Result.isFailure(decoded), `decoded ${Array.from(bytes)}`)
        if (Result.isFailure(decoded)) assert.match(decoded.failure.message, /UTF-8/)
      }
    }
  })
})

describe("Codec text is exact", () => {
  const noLoneSurrogate = (text: string) => !/\p{Cs}/u.test(text)
  const text = fc.tuple(fc.boolean(), fc.string({ unit: "binary" }).filter(noLoneSurrogate))
    .map(([bom, rest]) => (bom ? `\uFEFF${rest}` : rest))

  it("Codec.string round-trips any well-formed text, a leading byte order mark included", () => {
    fc.assert(fc.property(text, (value) => {
      assert.strictEqual(roundTrip(Codec.string, value), value)
    }), { numRuns: 500 })
  })

  it("Codec.string refuses a lone surrogate instead of writing U+FFFD", () => {
    for (const value of ["\uD800", "a\uDC00b", "\uDBFF"]) assert.isTrue(Result.isFailure(Codec.string.encode(value)), JSON.stringify(value))
  })

  it("Codec.json round-trips any string, lone surrogates and byte order marks included, and skips a BOM before the JSON", () => {
    const codec = Codec.json(Schema.String)
    fc.assert(fc.property(fc.string({ unit: "binary" }), (value) => {
      assert.strictEqual(roundTrip(codec, value), value)
    }), { numRuns: 500 })
    const withBom = Uint8Array.of(0xef, 0xbb, 0xbf, ...new TextEncoder().encode(`"x"`))
    assert.deepStrictEqual(codec.decode(withBom), Result.succeed("x"))
  })
})

describe("typed publish → Consumer.run keeps the values (in-memory broker)", () => {
  it.effect("Date, ReadonlySet, Option, BigInt, NaN, Map and Uint8Array values are handled, none dead-lettered", () =>
    Effect.gen(function*() {
      const topic = Topic.make("codec.values", Nested)
      const values = fc.sample(nested, { numRuns: 50, seed: 7 }).map((value, i) => ({ ...value, id: `v${i}` }))
      yield* Publisher.publishAll(topic, values)
      const handled: Array<Nested> = []
      const fiber = yield* Consumer.run(topic, (value) => Effect.sync(() => handled.push(value)), { group: "g" }).pipe(
        Effect.forkChild
      )
      const inspect = yield* MemoryBroker.MemoryBroker
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("codec.values", "g"), (lag) => lag === 0), { within: "5 seconds" }))
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* inspect.published("codec.values.dlq")).length, 0, "values were dead-lettered")
      const byId = new Map(handled.map((v) => [v.id, v]))
      assert.strictEqual(handled.length, values.length)
      for (const value of values) expect(byId.get(value.id)).toStrictEqual(value)
    }).pipe(Effect.provide(Switchyard.layerMemory({ partitions: 1 }))))

  it.effect("the poison corpus (10,000 entries): every valid order handled, every invalid entry dead-lettered with a reason, invalid UTF-8 included", () =>
    Effect.gen(function*() {
      const topic = PoisonCorpus.topic("codec.poison")
      const corpus = PoisonCorpus.make({ count: 10_000, oversizedPayloadBytes: 64 * 1024 })
      const inspect = yield* MemoryBroker.MemoryBroker
      // As a foreign producer sends them: through the byte-level broker, not the typed publisher.
      const raw = corpus.map((e) =>
        Envelope.outgoing(e.payload, { id: e.messageId ?? Envelope.makeId(), headers: e.headers, contentType: e.contentType ?? "application/json" })
      )
      for (let i = 0; i < raw.length; i += 500) yield* Broker.Broker.use((broker) => broker.publish("codec.poison", raw.slice(i, i + 500)))
      const handled = new Set<string>()
      const fiber = yield* Consumer.run(topic, (order) => Effect.sync(() => handled.add(order.id)), { group: "g", idempotency: true })
        .pipe(Effect.forkChild)
      assert.isTrue(yield* TestKit.advanceUntil(Effect.map(inspect.lag("codec.poison", "g"), (lag) => lag === 0), { within: "60 seconds" }))
      // Alive at the end: a valid order published last is handled.
      yield* Publisher.publish(topic, { id: "final", n: 0 })
      assert.isTrue(yield* TestKit.advanceUntil(Effect.sync(() => handled.has("final")), { within: "5 seconds" }))
      yield* Fiber.interrupt(fiber)
      const dead = yield* inspect.published("codec.poison.dlq")
      const invalid = corpus.filter((e) => !e.valid)
      const deadIds = new Set(dead.map((d) => d.headers["x-switchyard-dlq-original-id"]))
      const missing = invalid.filter((e) => e.messageId !== undefined && !deadIds.has(e.messageId))
      console.log("poison corpus on the in-memory broker, per kind:", PoisonCorpus.countByKind(corpus))
      console.log(`handled ${handled.size - 1} of ${corpus.filter((e) => e.valid).length} valid; dead-lettered ${dead.length} of ${invalid.length} invalid`)
      assert.strictEqual(dead.length, invalid.length)
      assert.deepStrictEqual(missing, [])
      for (const letter of dead) assert.isAbove((letter.headers["x-switchyard-dlq-reason"] ?? "").length, 0)
      const utf8 = dead.filter((d) => (d.headers["x-switchyard-dlq-reason"] ?? "").includes("UTF-8")).length
      assert.strictEqual(utf8, corpus.filter((e) => e.kind === "invalid-utf8").length, "invalid UTF-8 entries not dead-lettered as such")
      const valid = corpus.flatMap((e) => (e.orderId === undefined ? [] : [e.orderId]))
      assert.deepStrictEqual(valid.filter((id) => !handled.has(id)), [])
    }).pipe(Effect.provide(Switchyard.layerMemory({ partitions: 1 }))), { timeout: 120_000 })
})
