/**
 * `Codec.json`'s compiled path for plain schemas (structs, arrays, strings, numbers, booleans, literals,
 * unions of literals, null and NullOr, with or without checks; no transformations) must give exactly what the Schema's JSON codec gives, in both
 * directions: the same value with its keys in the same order, or the same error. Inputs are near-valid on
 * purpose: wrong types, `"NaN"` strings, non-finite numbers, missing, extra and inherited keys, class
 * instances, null-prototype objects, sparse arrays.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Codec } from "@switchyard/core"
import { Result, Schema } from "effect"
import * as fc from "fast-check"
import * as PlainJson from "../src/internal/plainJson.ts"

const Line = Schema.Struct({ sku: Schema.String, quantity: Schema.Number, gift: Schema.optionalKey(Schema.Boolean) })
const Order = Schema.Struct({
  orderId: Schema.String,
  kind: Schema.Literal("order"),
  version: Schema.Literal(2),
  lines: Schema.Array(Line),
  total: Schema.Number,
  paid: Schema.Boolean,
  coupon: Schema.Null,
  note: Schema.optionalKey(Schema.String),
  tags: Schema.Array(Schema.String),
  status: Schema.Literals(["placed", "cancelled", 3, true]),
  discount: Schema.NullOr(Schema.Number),
  ref: Schema.NullOr(Schema.Struct({ id: Schema.String }))
})

const anything = fc.oneof(
  fc.string(),
  fc.double(),
  fc.constantFrom("NaN", "Infinity", NaN, Infinity, -Infinity, -0, null, true, false, "order", 2, undefined),
  fc.constant([]),
  fc.constant({})
)
const numberLike = fc.oneof(fc.double(), fc.integer(), anything)
const line = fc.record({ sku: fc.oneof(fc.string(), anything), quantity: numberLike, gift: fc.oneof(fc.boolean(), anything), extra: anything }, {
  requiredKeys: []
})
const order = fc.record({
  orderId: fc.oneof(fc.string(), anything),
  kind: fc.oneof(fc.constant("order"), anything),
  version: fc.oneof(fc.constant(2), anything),
  lines: fc.oneof(fc.array(fc.oneof(line, anything), { maxLength: 3 }), anything),
  total: numberLike,
  paid: fc.oneof(fc.boolean(), anything),
  coupon: fc.oneof(fc.constant(null), anything),
  note: fc.oneof(fc.string(), anything),
  tags: fc.oneof(fc.array(fc.oneof(fc.string(), anything), { maxLength: 3 }), anything),
  status: fc.oneof(fc.constantFrom("placed", "cancelled", 3, true, "Placed", 4, false), anything),
  discount: fc.oneof(fc.constant(null), numberLike),
  ref: fc.oneof(fc.constant(null), fc.record({ id: fc.oneof(fc.string(), anything) }, { requiredKeys: [] }), anything),
  extra: anything
}, { requiredKeys: [] })
/** Mostly valid orders, so that both paths' success is exercised as much as their failures. */
const validOrder = fc.record({
  orderId: fc.string(),
  kind: fc.constant("order" as const),
  version: fc.constant(2 as const),
  lines: fc.array(fc.record({ sku: fc.string(), quantity: fc.double({ noNaN: true, noDefaultInfinity: true }), gift: fc.boolean() }, {
    requiredKeys: ["sku", "quantity"]
  }), { maxLength: 3 }),
  total: fc.double({ noNaN: true, noDefaultInfinity: true }),
  paid: fc.boolean(),
  coupon: fc.constant(null),
  note: fc.string(),
  tags: fc.array(fc.string(), { maxLength: 3 }),
  status: fc.constantFrom("placed" as const, "cancelled" as const, 3 as const, true as const),
  discount: fc.oneof(fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true })),
  ref: fc.oneof(fc.constant(null), fc.record({ id: fc.string() }))
}, { requiredKeys: ["orderId", "kind", "version", "lines", "total", "paid", "coupon", "tags", "status", "discount", "ref"] })

/** A valid order with one field replaced by something else, or removed: one reason to refuse it at most. */
const oneFieldOff = fc.tuple(validOrder, fc.constantFrom(...Object.keys(Order.fields)), fc.oneof(anything, fc.constant("remove"))).map(
  ([valid, field, replacement]) => {
    const copy: Record<string, unknown> = { ...valid }
    if (replacement === "remove") delete copy[field]
    else copy[field] = replacement
    return copy
  }
)

/** Shapes the JSON codec must judge as the compiled path does: class instances, inherited keys, null prototypes, holes. */
class OrderClass {
  orderId = "c-1"
  kind = "order"
  version = 2
  lines = []
  total = 1
  paid = true
  coupon = null
  tags = []
  status = "placed"
  discount = null
  ref = null
}
const oddShapes: ReadonlyArray<unknown> = [
  new OrderClass(),
  Object.assign(Object.create({ orderId: "inherited" }), { kind: "order", version: 2, lines: [], total: 1, paid: true, coupon: null, tags: [], status: "placed", discount: null, ref: null }),
  Object.assign(Object.create(null), { orderId: "n", kind: "order", version: 2, lines: [], total: 1, paid: true, coupon: null, tags: [], status: "placed", discount: null, ref: null }),
  { orderId: "h", kind: "order", version: 2, lines: [], total: 1, paid: true, coupon: null, tags: new Array(2), status: "placed", discount: null, ref: null },
  { orderId: "u", kind: "order", version: 2, lines: [], total: 1, paid: true, coupon: null, tags: [], note: undefined, status: "placed", discount: null, ref: null },
  { orderId: "z", kind: "order", version: 2, lines: [], total: -0, paid: true, coupon: null, tags: [], status: "placed", discount: null, ref: null },
  { orderId: "i", kind: "order", version: 2, lines: [{ sku: "s", quantity: Infinity }], total: 1, paid: true, coupon: null, tags: [], status: "placed", discount: null, ref: null },
  [],
  null,
  "order"
]

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Encodes as `Codec.json` and as the Schema's JSON codec: the same bytes, or the same error. */
const encodesAlike = <A>(schema: Schema.Codec<A, unknown, never, never>) => {
  const viaSchema = Schema.encodeUnknownResult(Schema.toCodecJson(schema))
  const codec = Codec.json(schema)
  return (value: unknown) => {
    const expected = viaSchema(value)
    const actual = codec.encode(value as A)
    if (Result.isSuccess(expected)) {
      assert.isTrue(Result.isSuccess(actual), `accepted by the Schema: ${String(JSON.stringify(value))}`)
      if (Result.isSuccess(actual)) assert.strictEqual(text(actual.success), JSON.stringify(expected.success))
    } else {
      assert.isTrue(Result.isFailure(actual), `refused by the Schema: ${String(JSON.stringify(value))}`)
      if (Result.isFailure(actual)) assert.strictEqual(actual.failure, expected.failure.message)
    }
  }
}

/** Decodes JSON text as `Codec.json` and as the Schema's JSON codec: the same value in the same key order, or the same error. */
const decodesAlike = <A>(schema: Schema.Codec<A, unknown, never, never>) => {
  const viaSchema = Schema.decodeUnknownResult(Schema.toCodecJson(schema))
  const codec = Codec.json(schema)
  return (json: string) => {
    const expected = viaSchema(JSON.parse(json))
    const actual = codec.decode(Codec.encodeUtf8(json))
    if (Result.isSuccess(expected)) {
      assert.isTrue(Result.isSuccess(actual), json)
      if (Result.isSuccess(actual)) {
        expect(actual.success).toStrictEqual(expected.success)
        assert.strictEqual(JSON.stringify(actual.success), JSON.stringify(expected.success), "key order")
      }
    } else {
      assert.isTrue(Result.isFailure(actual), json)
      if (Result.isFailure(actual)) assert.strictEqual(actual.failure.message, expected.failure.message)
    }
  }
}

/** The same shape with checks on leaves, an array and the struct itself. */
const Checked = Schema.Struct({
  orderId: Schema.String.check(Schema.isNonEmpty()),
  quantity: Schema.Int,
  total: Schema.Number.check(Schema.isGreaterThan(0)),
  tags: Schema.Array(Schema.String).check(Schema.isMinLength(1)),
  lines: Schema.Array(Schema.Struct({ sku: Schema.String.check(Schema.isMaxLength(3)), quantity: Schema.Number.check(Schema.isInt().and(Schema.isBetween({ minimum: 1, maximum: 9 }))) }))
}).check(Schema.makeFilter((o) => o.quantity < 1000 || "quantity too large"))
const checkedLike = fc.record({
  orderId: fc.oneof(fc.constantFrom("", "o-1"), anything),
  quantity: fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.constantFrom(1.5, 999, 1000), anything),
  total: fc.oneof(fc.constantFrom(0, -1, 0.5, 10), numberLike),
  tags: fc.oneof(fc.array(fc.string(), { maxLength: 2 }), anything),
  lines: fc.oneof(fc.array(fc.record({ sku: fc.oneof(fc.string({ maxLength: 5 }), anything), quantity: fc.oneof(fc.integer({ min: 0, max: 10 }), anything) }), { maxLength: 2 }), anything)
}, { requiredKeys: ["orderId", "quantity", "total", "tags", "lines"] })

const validChecked = fc.record({
  orderId: fc.string({ minLength: 1 }),
  quantity: fc.integer({ min: 0, max: 1100 }),
  total: fc.double({ min: 0, max: 100, noNaN: true }),
  tags: fc.array(fc.string(), { minLength: 0, maxLength: 2 }),
  lines: fc.array(fc.record({ sku: fc.string({ maxLength: 4 }), quantity: fc.integer({ min: 0, max: 10 }) }), { maxLength: 2 })
})

const codec = Codec.json(Order)

describe("Codec.json on a plain schema (the compiled path)", () => {
  it("is taken for plain schemas only", () => {
    assert.isDefined(PlainJson.compile(Order.ast))
    assert.isDefined(PlainJson.compile(Checked.ast))
    const notPlain = [
      Schema.Struct({ n: Schema.NumberFromString }),
      Schema.Struct({ at: Schema.Date }),
      Schema.Struct({ n: Schema.optional(Schema.Number) }),
      Schema.Struct({ v: Schema.Union([Schema.Number, Schema.String]) }),
      Schema.Record(Schema.String, Schema.Number),
      Schema.Tuple([Schema.String]),
      Schema.Struct({ ["__proto__"]: Schema.String }),
      Schema.Literal(1n)
    ]
    for (const schema of notPlain) assert.isUndefined(PlainJson.compile(schema.ast), String(schema.ast._tag))
  })

  it("encodes what the Schema's JSON codec encodes: the same bytes or the same error (near-valid values)", () => {
    fc.assert(fc.property(order, encodesAlike(Order)), { numRuns: 2_000 })
    fc.assert(fc.property(validOrder, encodesAlike(Order)), { numRuns: 1_000 })
    fc.assert(fc.property(oneFieldOff, encodesAlike(Order)), { numRuns: 2_000 })
    for (const value of oddShapes) encodesAlike(Order)(value)
  })

  it("decodes what the Schema's JSON codec decodes: the same value in the same key order, or the same error", () => {
    fc.assert(fc.property(order, (value) => decodesAlike(Order)(JSON.stringify(value) ?? "null")), { numRuns: 2_000 })
    fc.assert(fc.property(validOrder, (value) => decodesAlike(Order)(JSON.stringify(value))), { numRuns: 1_000 })
    fc.assert(fc.property(oneFieldOff, (value) => decodesAlike(Order)(JSON.stringify(value))), { numRuns: 2_000 })
    for (const json of [`{"kind":"order","orderId":"x","version":2,"lines":[],"total":"NaN","paid":true,"coupon":null,"tags":[],"status":"placed","discount":"Infinity","ref":null}`, `[]`, `null`, `"x"`]) {
      decodesAlike(Order)(json)
    }
  })

  it("with checks (Int, isNonEmpty, isGreaterThan, isMinLength, a group of isInt and isBetween, a struct filter): the same bytes, value or error both ways", () => {
    let accepted = 0
    fc.assert(fc.property(fc.oneof(checkedLike, validChecked), (value) => {
      encodesAlike(Checked)(value)
      decodesAlike(Checked)(JSON.stringify(value))
      if (Result.isSuccess(Schema.decodeUnknownResult(Checked)(value))) accepted++
    }), { numRuns: 3_000 })
    // Both outcomes exercised: some values pass every check, most fail one.
    assert.isAbove(accepted, 100)
  })

  it("writes NaN and ±Infinity as the JSON codec does and reads them back", () => {
    const value = { orderId: "n", kind: "order", version: 2, lines: [{ sku: "s", quantity: NaN }], total: -Infinity, paid: false, coupon: null, tags: [], status: "placed", discount: null, ref: null } as const
    const bytes = codec.encode(value)
    assert.isTrue(Result.isSuccess(bytes))
    if (Result.isFailure(bytes)) return
    assert.include(text(bytes.success), `"quantity":"NaN"`)
    const back = codec.decode(bytes.success)
    assert.isTrue(Result.isSuccess(back))
    if (Result.isSuccess(back)) expect(back.success).toStrictEqual(value)
  })
})
