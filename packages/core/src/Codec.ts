/**
 * Codecs turn typed values into bytes and back. They are synchronous and return `Result` values, so the
 * hot path of publishing and consuming stays free of per-message fibers. JSON via a Schema is the
 * default; string and raw bytes codecs are built in; `make` plugs in anything else (Avro, Protobuf…).
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import * as JsonDecode from "./internal/jsonDecode.ts"
import * as PlainJson from "./internal/plainJson.ts"

/**
 * A payload codec.
 *
 * @category models
 * @since 0.1.0
 */
export interface Codec<A> {
  readonly contentType: string
  /** Encode a value; a failure is a human readable reason. */
  readonly encode: (value: A) => Result.Result<Uint8Array, string>
  /** Decode bytes; a failure says why. */
  readonly decode: (bytes: Uint8Array) => Result.Result<A, Failure>
}

/**
 * Why a payload could not be decoded. `unknownType` is set when the payload is well formed but names an
 * event type the codec does not know (see `Router`), so the consumer can ignore it instead of
 * dead-lettering it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Failure {
  readonly message: string
  readonly unknownType?: string | undefined
}

/**
 * A decode failure with a message.
 *
 * @example
 * ```ts
 * import { Codec } from "@switchyard/core"
 * const notAnOrder = Codec.failure("expected an order")
 * const unknownEvent = Codec.failure("no handler for this event type", "OrderShipped")
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const failure = (message: string, unknownType?: string): Failure =>
  unknownType === undefined ? { message } : { message, unknownType }

const textEncoder = new TextEncoder()
// Node's `Buffer.from` writes UTF-8 about five times faster than `TextEncoder.encode` for message-sized text
// (a view into a shared pool, never copied again by the adapters, which all take byteOffset/byteLength).
const nodeBuffer: typeof Buffer | undefined = globalThis.Buffer
// Strict: invalid sequences fail instead of becoming U+FFFD, and a leading byte order mark is kept as part
// of the text (only JSON, which may not start with one, skips it).
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
// A lone surrogate has no UTF-8 form: `TextEncoder` would silently write U+FFFD in its place.
const loneSurrogate = /\p{Cs}/u

/**
 * Builds a codec from two functions.
 *
 * @example
 * ```ts
 * import { Result } from "effect"
 * import { Codec } from "@switchyard/core"
 * const upper = Codec.make<string>({
 *   contentType: "text/plain",
 *   encode: (s) => Result.succeed(new TextEncoder().encode(s.toUpperCase())),
 *   decode: (b) => Result.succeed(new TextDecoder().decode(b))
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const make = <A>(codec: Codec<A>): Codec<A> => codec

/**
 * Decodes UTF-8 text, failing on invalid byte sequences (never replacement characters). A leading byte
 * order mark is kept: the text is exactly what was encoded.
 *
 * @example
 * ```ts
 * import { Result } from "effect"
 * import { Codec } from "@switchyard/core"
 * const text = Codec.decodeUtf8(new Uint8Array([104, 105])) // success: "hi"
 * const bad = Codec.decodeUtf8(new Uint8Array([0xff]))      // failure: not valid UTF-8
 * console.log(Result.isSuccess(text), Result.isFailure(bad)) // true true
 * ```
 * @category utils
 * @since 0.1.0
 */
export const decodeUtf8 = (bytes: Uint8Array): Result.Result<string, Failure> => {
  // A plain try, not `Result.try`: no options object and closures per message on the hot path.
  try {
    return Result.succeed(textDecoder.decode(bytes))
  } catch {
    return notUtf8
  }
}

const notUtf8: Result.Result<never, Failure> = Result.fail(failure("payload is not valid UTF-8"))
const notJson: Result.Result<never, Failure> = Result.fail(failure("payload is not valid JSON"))

const parseText = (text: string): Result.Result<unknown, Failure> => {
  try {
    return Result.succeed(JSON.parse(text))
  } catch {
    return notJson
  }
}

/**
 * Parses UTF-8 JSON into an unknown value. A leading byte order mark is skipped (RFC 8259 lets parsers
 * ignore it; some producers write one).
 *
 * @example
 * ```ts
 * import { Result } from "effect"
 * import { Codec } from "@switchyard/core"
 * const parsed = Codec.parseJson(Codec.encodeUtf8('{"orderId":"o-1"}'))
 * if (Result.isSuccess(parsed)) console.log(parsed.success) // { orderId: "o-1" }
 * ```
 * @category utils
 * @since 0.1.0
 */
export const parseJson = (bytes: Uint8Array): Result.Result<unknown, Failure> => {
  const text = decodeUtf8(bytes)
  if (Result.isFailure(text)) return text
  const json = text.success.charCodeAt(0) === 0xfeff ? text.success.slice(1) : text.success
  return parseText(json)
}

/**
 * Encodes text as UTF-8.
 *
 * @example
 * ```ts
 * import { Codec } from "@switchyard/core"
 * const bytes = Codec.encodeUtf8("héllo") // Uint8Array(6)
 * ```
 * @category utils
 * @since 0.1.0
 */
export const encodeUtf8: (text: string) => Uint8Array = nodeBuffer === undefined
  ? (text) => textEncoder.encode(text)
  : (text) => nodeBuffer.from(text, "utf8")

/** JSON text of an already JSON-shaped value; `undefined` has no JSON text, cycles throw. */
const stringify = (value: unknown): Result.Result<Uint8Array, string> => {
  // A plain try, not `Result.try`: no options object and closures per message on the hot path.
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    return Result.fail(`value is not JSON serialisable: ${String(cause)}`)
  }
  return text === undefined ? noJsonText : Result.succeed(encodeUtf8(text))
}

const noJsonText: Result.Result<never, string> = Result.fail("value has no JSON representation")

/**
 * Decodes an already parsed JSON value (the output of `JSON.parse`) with a Schema's JSON codec
 * (`Schema.toCodecJson`): the decoding half of `json`, for codecs that parse once and inspect the value
 * first (see `Router`). Build it once per schema; the returned function is the per-message path.
 *
 * @category utils
 * @since 0.2.0
 */
export const jsonValueDecoder = <S extends Schema.Codec<unknown, unknown, never, never>>(
  schema: S
): (value: unknown) => Result.Result<S["Type"], Failure> => jsonDecoderOf(schema, Schema.toCodecJson(schema))

/**
 * The decoder of parsed JSON values: the JSON codec's, preceded by the schema's own where it gives the same
 * value and skips the JSON codec's links on every number (see internal/jsonDecode.ts).
 */
const jsonDecoderOf = <A>(
  schema: Schema.Codec<A, unknown, never, never>,
  codec: Schema.Codec<A, unknown, never, never>
) => {
  const decodeValue = Schema.decodeUnknownResult(codec)
  // No `Result.mapError` (a closure and the dual's arguments object per message): the success is rewrapped.
  const viaCodec = (value: unknown): Result.Result<A, Failure> => {
    const decoded = decodeValue(value)
    return Result.isFailure(decoded) ? Result.fail(failure(decoded.failure.message)) : Result.succeed(decoded.success)
  }
  if (codec.ast === schema.ast || !JsonDecode.decodesAsJson(schema.ast)) return viaCodec
  const decodeAsIs = Schema.decodeUnknownResult(schema)
  return (value: unknown): Result.Result<A, Failure> => {
    const decoded = decodeAsIs(value)
    return Result.isSuccess(decoded) ? Result.succeed(decoded.success) : viaCodec(value)
  }
}

/**
 * JSON text validated by a Schema: the default codec of a topic. Values go through the Schema's canonical
 * JSON codec (`Schema.toCodecJson`), so every Schema with a JSON form round-trips: a `Date` travels as an
 * ISO string, `BigInt` as a decimal string, `NaN` / `±Infinity` as `"NaN"` / `"Infinity"`, a
 * `ReadonlySet` as an array, a `ReadonlyMap` as an array of pairs, an `Option` as `{ _tag, value }`, a
 * `Uint8Array` as base64. A Schema whose encoded side is already JSON (strings, finite numbers, structs,
 * `DateFromString`…) produces the same bytes as before. Payloads must be valid UTF-8: invalid byte
 * sequences are a decode failure, never replacement characters.
 *
 * Two JSON limits remain: `-0` arrives as `0`, and a union whose members share a JSON form is ambiguous (in
 * `Union([String, Number])`, `Infinity` is sent as `"Infinity"` and decoded as that string); use
 * `Schema.Finite` or a tagged union there.
 *
 * Speed: a plain schema (structs, arrays, strings, numbers, booleans, literals, unions of literals, `null`
 * and `NullOr`, with or without checks such as `Schema.Int`; no transformations, other unions or records) is
 * checked and copied by a function compiled once, in both directions, with the same result as the Schema;
 * only what it does not vouch for (a wrong type, `NaN`, a class instance) goes through the Schema, which
 * decides and words the error.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Codec } from "@switchyard/core"
 * const codec = Codec.json(Schema.Struct({ orderId: Schema.String, placedAt: Schema.Date }))
 * ```
 * @category codecs
 * @since 0.1.0
 */
export const json = <S extends Schema.Codec<unknown, unknown, never, never>>(schema: S): Codec<S["Type"]> => {
  // Built once per topic: the per-message path is one Schema pass plus JSON.stringify / JSON.parse.
  const codec = Schema.toCodecJson(schema)
  const encodeValue = Schema.encodeUnknownResult(codec)
  const decodeValue = jsonDecoderOf(schema, codec)
  const encodeSchema = (value: S["Type"]): Result.Result<Uint8Array, string> => {
    const encoded = encodeValue(value)
    return Result.isFailure(encoded) ? Result.fail(encoded.failure.message) : stringify(encoded.success)
  }
  const decodeParsed = (parsed: Result.Result<unknown, Failure>) => Result.isFailure(parsed) ? parsed : decodeValue(parsed.success)
  // A plain schema (no transformations) has a compiled projection: the Schema runs only for what it
  // does not vouch for, and then decides and words the error.
  const project = PlainJson.compile(schema.ast)
  if (project === undefined) return { contentType: "application/json", encode: encodeSchema, decode: (bytes) => decodeParsed(parseJson(bytes)) }
  return {
    contentType: "application/json",
    encode: (value) => {
      const projected = project(value)
      return projected === PlainJson.invalid ? encodeSchema(value) : stringify(projected)
    },
    decode: (bytes) => {
      const parsed = parseJson(bytes)
      if (Result.isFailure(parsed)) return parsed
      const projected = project(parsed.success)
      return projected === PlainJson.invalid ? decodeValue(parsed.success) : Result.succeed(projected as S["Type"])
    }
  }
}

/**
 * UTF-8 text, byte for byte: decoding fails on invalid UTF-8, encoding fails on a string with a lone
 * surrogate (which has no UTF-8 form), so what is decoded is always exactly what was encoded.
 *
 * @category codecs
 * @since 0.1.0
 */
export const string: Codec<string> = {
  contentType: "text/plain; charset=utf-8",
  encode: (value) =>
    loneSurrogate.test(value)
      ? Result.fail("text has a lone surrogate, which UTF-8 cannot encode")
      : Result.succeed(encodeUtf8(value)),
  decode: decodeUtf8
}

/**
 * Raw bytes, passed through unchanged.
 *
 * @category codecs
 * @since 0.1.0
 */
export const bytes: Codec<Uint8Array> = {
  contentType: "application/octet-stream",
  encode: Result.succeed,
  decode: Result.succeed
}
