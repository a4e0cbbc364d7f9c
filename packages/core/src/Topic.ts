/**
 * A typed destination: a name bound to a codec and, optionally, a key function. Publishers and consumers
 * share the same `Topic` value, so the types line up at compile time. A topic maps to a Kafka topic, a
 * RabbitMQ exchange, or a NATS subject / JetStream stream, depending on the broker.
 *
 * @since 0.1.0
 */
import type { Schema } from "effect"
import * as Codec from "./Codec.ts"

/**
 * A typed destination.
 *
 * @category models
 * @since 0.1.0
 */
export interface Topic<A> {
  readonly name: string
  readonly codec: Codec.Codec<A>
  /** Derives the partitioning / ordering key from a value. */
  readonly key: ((value: A) => string | undefined) | undefined
}

/**
 * Options of a topic.
 *
 * @category models
 * @since 0.1.0
 */
export interface TopicOptions<A> {
  readonly key?: ((value: A) => string | undefined) | undefined
}

/**
 * A JSON topic validated by a Schema (the common case). Values travel in the Schema's canonical JSON form
 * (`Codec.json`), so a `Date`, `BigInt`, `ReadonlySet`, `ReadonlyMap`, `Option`, `NaN` or `Uint8Array` in a
 * message comes back as the same value on every broker.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Topic } from "@switchyard/core"
 * const OrderPlaced = Schema.Struct({ orderId: Schema.String, total: Schema.Number })
 * const orders = Topic.make("orders", OrderPlaced, { key: (o) => o.orderId })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const make = <S extends Schema.Codec<unknown, unknown, never, never>>(
  name: string,
  schema: S,
  options?: TopicOptions<S["Type"]>
): Topic<S["Type"]> => ({ name, codec: Codec.json(schema), key: options?.key })

/**
 * A topic with any codec (string, bytes, or your own).
 *
 * @example
 * ```ts
 * import { Codec, Topic } from "@switchyard/core"
 * const logs = Topic.withCodec("logs", Codec.string)
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const withCodec = <A>(name: string, codec: Codec.Codec<A>, options?: TopicOptions<A>): Topic<A> => ({
  name,
  codec,
  key: options?.key
})

/**
 * The same topic under another name (for example one per test, or per tenant).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const acmeOrders = Topic.rename(orders, "acme.orders") // same codec and key function
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const rename = <A>(topic: Topic<A>, name: string): Topic<A> => ({ ...topic, name })
