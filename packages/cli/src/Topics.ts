/**
 * The CLI's topics are untyped: payloads are JSON values (a Topic of `Schema.Unknown`), or raw bytes.
 *
 * @since 0.1.0
 */
import { Codec, Topic } from "@switchyard/core"
import { Result, Schema } from "effect"

/**
 * A topic whose payloads are any JSON value.
 *
 * @example
 * ```ts
 * import { Topics } from "@switchyard/cli"
 * const orders = Topics.json("orders")
 * ```
 * @since 0.1.0
 */
export const json = (name: string): Topic.Topic<unknown> => Topic.make(name, Schema.Unknown)

/**
 * A topic of raw bytes (`--raw`).
 *
 * @example
 * ```ts
 * import { Topics } from "@switchyard/cli"
 * const orders = Topics.raw("orders")
 * ```
 * @since 0.1.0
 */
export const raw = (name: string): Topic.Topic<Uint8Array> => Topic.withCodec(name, Codec.bytes)

const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(Schema.Unknown))

/**
 * Parses one line of JSON text; the failure is the parser's message.
 *
 * @example
 * ```ts
 * import { Topics } from "@switchyard/cli"
 * Topics.parseLine('{"orderId":"o-1"}') // Result.succeed({ orderId: "o-1" })
 * ```
 * @since 0.1.0
 */
export const parseLine = (line: string): Result.Result<unknown, string> =>
  Result.mapError(decodeJson(line), (error) => error.message)

const decoder = new TextDecoder()

/**
 * A payload as text (UTF-8, invalid bytes replaced), for `--raw` output.
 *
 * @example
 * ```ts
 * import { Topics } from "@switchyard/cli"
 * Topics.text(new TextEncoder().encode("hello")) // "hello"
 * ```
 * @since 0.1.0
 */
export const text = (payload: Uint8Array): string => decoder.decode(payload)
