/**
 * Routing for destinations that carry several event types: a union of tagged events, one handler per
 * tag. Payloads naming a type the router does not know decode as an "unknown type" failure, which the
 * consumer ignores or dead-letters (`decode: { onUnknownType }`).
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Result, Schema } from "effect"
import * as Codec from "./Codec.ts"
import type { Envelope } from "./Envelope.ts"
import type { Topic, TopicOptions } from "./Topic.ts"

type Tagged = { readonly _tag: string }

/**
 * One handler per event tag.
 *
 * @category models
 * @since 0.1.0
 */
export type Handlers<A extends Tagged, E, R> = {
  readonly [Tag in A["_tag"]]: (event: Extract<A, { readonly _tag: Tag }>, envelope: Envelope) => Effect.Effect<unknown, E, R>
}

/**
 * The error type of a handler table.
 *
 * @category models
 * @since 0.1.0
 */
export type ErrorOf<H> = {
  readonly [K in keyof H]: H[K] extends (...args: never) => Effect.Effect<unknown, infer E, infer _R> ? E : never
}[keyof H]

/**
 * The services required by a handler table.
 *
 * @category models
 * @since 0.1.0
 */
export type ContextOf<H> = {
  readonly [K in keyof H]: H[K] extends (...args: never) => Effect.Effect<unknown, infer _E, infer R> ? R : never
}[keyof H]

/**
 * A router: the topic that decodes the union (and flags unknown types) and the handler that dispatches.
 *
 * @category models
 * @since 0.1.0
 */
export interface Router<A extends Tagged, E, R> {
  readonly topic: Topic<A>
  readonly handler: (event: A, envelope: Envelope) => Effect.Effect<unknown, E, R>
}

/**
 * Builds a router for a union of tagged events.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Consumer, Router } from "@switchyard/core"
 * const OrderPlaced = Schema.TaggedStruct("OrderPlaced", { orderId: Schema.String })
 * const OrderCancelled = Schema.TaggedStruct("OrderCancelled", { orderId: Schema.String })
 * const router = Router.make("orders", Schema.Union([OrderPlaced, OrderCancelled]), {
 *   OrderPlaced: (e) => Effect.log(`placed ${e.orderId}`),
 *   OrderCancelled: (e) => Effect.log(`cancelled ${e.orderId}`)
 * })
 * const program = Consumer.run(router.topic, router.handler, { group: "audit", decode: { onUnknownType: "ignore" } })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const make = <
  S extends Schema.Codec<Tagged, unknown, never, never>,
  H extends Handlers<S["Type"], unknown, unknown>
>(
  name: string,
  schema: S,
  handlers: H,
  options?: TopicOptions<S["Type"]>
): Router<S["Type"], ErrorOf<H>, ContextOf<H>> => {
  type E = ErrorOf<H>
  type R = ContextOf<H>
  const known = new Set(Object.keys(handlers))
  const json = Codec.json(schema)
  // The payload is parsed once: the tag is read from the parsed value, which the schema then decodes.
  const decodeValue = Codec.jsonValueDecoder(schema)
  const Envelope = Schema.Struct({ _tag: Schema.String })
  const readTag = Schema.decodeUnknownResult(Envelope)
  const codec: Codec.Codec<S["Type"]> = {
    contentType: json.contentType,
    encode: json.encode,
    decode: (bytes) => {
      const parsed = Codec.parseJson(bytes)
      if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
      const tagged = readTag(parsed.success)
      if (Result.isFailure(tagged)) return Result.fail(Codec.failure(`payload has no event type: ${tagged.failure.message}`))
      if (!known.has(tagged.success._tag)) {
        return Result.fail(Codec.failure(`unknown event type "${tagged.success._tag}"`, tagged.success._tag))
      }
      // Same failure as `Codec.json`'s decode.
      return decodeValue(parsed.success)
    }
  }
  // Each handler accepts exactly the union member of its tag; dispatch is by that same tag.
  const table: Readonly<Record<string, (event: never, envelope: Envelope) => Effect.Effect<unknown, unknown, unknown>>> =
    handlers
  return {
    topic: { name, codec, key: options?.key },
    // ErrorOf/ContextOf are exactly the union of the handlers' error and context types.
    handler: (event, envelope) => table[event._tag]!(event as never, envelope) as Effect.Effect<unknown, E, R>
  }
}
