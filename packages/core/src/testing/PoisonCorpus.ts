/**
 * A deterministic corpus of messages as foreign producers send them: valid orders with full, missing or
 * garbage metadata, and poison (invalid JSON, wrong schema, empty, invalid UTF-8, oversized payloads and
 * headers). Adapter tests publish it with the broker's raw client and check that the consumer stays alive,
 * handles every valid message and dead-letters every invalid one with a reason.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import * as Topic from "../Topic.ts"

/**
 * The valid message shape.
 *
 * @category schemas
 * @since 0.2.0
 */
export const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })

/**
 * A topic of {@link Order}s with the default JSON codec.
 *
 * @example
 * ```ts
 * import { PoisonCorpus } from "@switchyard/core/testing"
 * const orders = PoisonCorpus.topic("sy-test.poison")
 * ```
 * @category constructors
 * @since 0.2.0
 */
export const topic = (name: string): Topic.Topic<typeof Order.Type> => Topic.make(name, Order)

/**
 * What an entry is.
 *
 * @category models
 * @since 0.2.0
 */
export type Kind =
  | "valid"
  | "valid-no-metadata"
  | "valid-garbage-metadata"
  | "invalid-json"
  | "wrong-schema"
  | "empty"
  | "invalid-utf8"
  | "garbage-metadata"
  | "oversized-payload"
  | "oversized-header"

/**
 * One message to publish with a raw client.
 *
 * @category models
 * @since 0.2.0
 */
export interface Entry {
  readonly index: number
  readonly kind: Kind
  /** Whether the payload decodes as an {@link Order}: valid entries must be handled, the others dead-lettered. */
  readonly valid: boolean
  /** The order's `id` for valid entries (unique in the corpus); `undefined` for poison. */
  readonly orderId: string | undefined
  readonly payload: Uint8Array
  /** Headers to send as they are (they may contain garbage in Switchyard's own header names). */
  readonly headers: Readonly<Record<string, string>>
  /** A native message id to set (AMQP `messageId`, JetStream `Nats-Msg-Id`, …), or none. Unique when set. */
  readonly messageId: string | undefined
  /** A native content type to set, or none. */
  readonly contentType: string | undefined
}

/**
 * Options of {@link make}.
 *
 * @category models
 * @since 0.2.0
 */
export interface Options {
  readonly count: number
  readonly seed?: number | undefined
  /** Size of each oversized payload (default 512 KiB): below the broker's limit, so the raw publish succeeds. */
  readonly oversizedPayloadBytes?: number | undefined
  /** Size of the one big header of each oversized-header entry (default 16 KiB). */
  readonly oversizedHeaderBytes?: number | undefined
  /** How many entries of each oversized kind (default 5). */
  readonly oversizedCount?: number | undefined
}

/** mulberry32: a tiny seeded PRNG, so a failing corpus can be replayed. */
const prng = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const utf8 = new TextEncoder()

const garbageHeaderSets: ReadonlyArray<Readonly<Record<string, string>>> = [
  { "x-switchyard-timestamp": "NaN" },
  { "x-switchyard-timestamp": "not a time", "x-switchyard-id": "" },
  { "x-switchyard-timestamp": "-5", "content-type": "" },
  { "x-switchyard-timestamp": "1e400", "x-switchyard-key": "" },
  { "x-switchyard-id": " ", "x-switchyard-correlation-id": "", "x-switchyard-causation-id": "" },
  { "traceparent": "00-00000000000000000000000000000000-0000000000000000-01" },
  { "traceparent": "garbage" },
  { "traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01" },
  { "x-switchyard-dlq-reason": "spoofed by a producer", "x-switchyard-dlq-attempts": "many" },
  { "content-type": "text/garbage; charset=latin1", "x-switchyard-timestamp": "" },
  { "x-switchyard-id": "x".repeat(300) }
]

const wrongSchemaPayloads: ReadonlyArray<string> = [
  `{"id":5,"n":1}`,
  `[]`,
  `"just a string"`,
  `null`,
  `{"n":"seven"}`,
  `{"id":"missing n"}`,
  `42`
]

const invalidJsonPayloads: ReadonlyArray<string> = [
  `{"id":`,
  `not json at all`,
  `{'id':'single quotes','n':1}`,
  `{"id":"x","n":1}}`,
  `\u0000\u0001\u0002`,
  `{"id":"x","n":NaN}`
]

const invalidUtf8Payloads: ReadonlyArray<Uint8Array> = [
  Uint8Array.of(0xff, 0xfe, 0xfd),
  // Well-formed JSON of the right shape except for an invalid UTF-8 byte in a string: a lenient decoder
  // would turn it into U+FFFD and accept a corrupted value.
  Uint8Array.of(...utf8.encode(`{"id":"`), 0xc3, 0x28, ...utf8.encode(`","n":1}`)),
  Uint8Array.of(0x7b, 0x80, 0x7d)
]

const pick = <A>(next: () => number, items: ReadonlyArray<A>): A => items[Math.floor(next() * items.length) % items.length]!

/**
 * Builds the corpus: `oversizedCount` entries of each oversized kind spread through it; of the rest, about
 * half valid (with full, no or garbage metadata) and half poison.
 *
 * @example
 * ```ts
 * import { PoisonCorpus } from "@switchyard/core/testing"
 * const corpus = PoisonCorpus.make({ count: 10_000 })
 * const valid = corpus.filter((entry) => entry.valid).length
 * ```
 * @category constructors
 * @since 0.2.0
 */
export const make = (options: Options): ReadonlyArray<Entry> => {
  const seed = options.seed ?? 20261201
  const next = prng(seed)
  const oversizedCount = options.oversizedCount ?? 5
  const payloadBytes = options.oversizedPayloadBytes ?? 512 * 1024
  const headerBytes = options.oversizedHeaderBytes ?? 16 * 1024
  const spacing = Math.max(1, Math.floor(options.count / Math.max(1, oversizedCount * 2)))
  const entries: Array<Entry> = []
  let oversized = 0
  for (let index = 0; index < options.count; index++) {
    const orderId = `poison-${seed}-${index}`
    const validPayload = utf8.encode(JSON.stringify({ id: orderId, n: index }))
    const messageId = `msg-${seed}-${index}`
    if (index % spacing === spacing - 1 && oversized < oversizedCount * 2) {
      const kind: Kind = oversized % 2 === 0 ? "oversized-payload" : "oversized-header"
      oversized++
      entries.push(
        kind === "oversized-payload"
          ? {
            index,
            kind,
            valid: false,
            orderId: undefined,
            // Wrong schema (id is a number), so it must be dead-lettered, and as big as the broker takes.
            payload: utf8.encode(`{"id":${index},"pad":"${"p".repeat(Math.max(0, payloadBytes - 40))}"}`),
            headers: {},
            messageId,
            contentType: "application/json"
          }
          : {
            index,
            kind,
            valid: false,
            orderId: undefined,
            payload: utf8.encode(`{"id":${index}}`),
            headers: { "x-big": "h".repeat(headerBytes) },
            messageId,
            contentType: "application/json"
          }
      )
      continue
    }
    const roll = next()
    if (roll < 0.5) {
      const variant = roll < 0.2 ? "valid" : roll < 0.35 ? "valid-no-metadata" : "valid-garbage-metadata"
      entries.push({
        index,
        kind: variant,
        valid: true,
        orderId,
        payload: validPayload,
        headers: variant === "valid-garbage-metadata" ? pick(next, garbageHeaderSets) : {},
        messageId: variant === "valid" ? messageId : undefined,
        contentType: variant === "valid" ? "application/json" : undefined
      })
      continue
    }
    const kind = pick<Kind>(next, ["invalid-json", "wrong-schema", "empty", "invalid-utf8", "garbage-metadata"])
    const payload = kind === "invalid-json"
      ? utf8.encode(pick(next, invalidJsonPayloads))
      : kind === "wrong-schema" || kind === "garbage-metadata"
      ? utf8.encode(pick(next, wrongSchemaPayloads))
      : kind === "empty"
      ? new Uint8Array(0)
      : pick(next, invalidUtf8Payloads)
    entries.push({
      index,
      kind,
      valid: false,
      orderId: undefined,
      payload,
      headers: kind === "garbage-metadata" ? pick(next, garbageHeaderSets) : {},
      messageId: next() < 0.5 ? messageId : undefined,
      contentType: next() < 0.5 ? "application/json" : undefined
    })
  }
  return entries
}

/**
 * Counts of a corpus by kind, for test output and closing notes.
 *
 * @example
 * ```ts
 * import { PoisonCorpus } from "@switchyard/core/testing"
 * const counts = PoisonCorpus.countByKind(PoisonCorpus.make({ count: 100 }))
 * ```
 * @category utils
 * @since 0.2.0
 */
export const countByKind = (entries: ReadonlyArray<Entry>): Readonly<Record<string, number>> => {
  const counts: Record<string, number> = {}
  for (const entry of entries) counts[entry.kind] = (counts[entry.kind] ?? 0) + 1
  return counts
}
