/** Arbitraries of the header-mapping properties. */
import { Envelope } from "@switchyard/core"
import * as fc from "fast-check"

export const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.constantFrom("  padded  ", "line 1\r\nline 2", "=?sy-b64?x", "a: b: c", "\t", "")
)
const nonBlank = text.filter((s) => s.trim() !== "" && s.length <= 255)
const headerName = fc.stringMatching(/^x-[a-z][a-z0-9-]{0,10}$/).filter((n) => !n.startsWith("x-switchyard-"))

/** Outgoing messages as the Publisher makes them (and as a redrive makes them: with a `dedupId`). */
export const outgoingMessage: fc.Arbitrary<Envelope.OutgoingMessage> = fc.record({
  payload: fc.uint8Array({ maxLength: 64 }),
  id: nonBlank,
  dedupId: fc.option(nonBlank, { nil: undefined }),
  key: fc.option(text, { nil: undefined }),
  headers: fc.dictionary(headerName, text, { maxKeys: 5 }),
  timestamp: fc.integer({ min: 1, max: 4_000_000_000_000 }),
  contentType: fc.oneof(fc.constant("application/json"), nonBlank),
  correlationId: fc.option(nonBlank, { nil: undefined }),
  causationId: fc.option(nonBlank, { nil: undefined })
}).map(({ dedupId, payload, ...fields }) => ({
  ...Envelope.outgoing(payload, fields),
  ...(dedupId === undefined ? {} : { dedupId })
}))

