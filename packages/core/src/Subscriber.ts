/**
 * The typed subscriber: a scoped `Stream` of deliveries for a topic and consumer group. Each delivery
 * carries its decoded value — or a typed `DecodeError`, never a stream failure — and the effects that
 * settle it.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Context, Effect, Layer, Result, Stream } from "effect"
import type { NackOptions, RawDelivery, StartFrom, SubscribeOptions } from "./Broker.ts"
import { Broker, defaultPrefetch, defaultSubscribeOptions } from "./Broker.ts"
import type { Capabilities } from "./Capabilities.ts"
import type { Envelope } from "./Envelope.ts"
import { AckError, DecodeError, type SubscribeError } from "./Errors.ts"
import type { Topic } from "./Topic.ts"

/**
 * A delivered message with its decoded value.
 *
 * @category models
 * @since 0.1.0
 */
export interface Delivery<A> {
  readonly envelope: Envelope
  /** The decoded value, or why it could not be decoded. */
  readonly value: Result.Result<A, DecodeError>
  /** The payload names an event type the topic's codec does not know (see `Router`). */
  readonly unknownType: string | undefined
  /** Acknowledge: the message is done and will not be delivered to this group again. */
  readonly ack: Effect.Effect<void, AckError>
  /** Negative acknowledgement: redeliver, optionally after a delay. */
  readonly nack: (options?: NackOptions) => Effect.Effect<void, AckError>
  /** The broker's delivery limit, when it has one (see `Broker.RawDelivery.deliveryLimit`). */
  readonly deliveryLimit?: number | undefined
}

/**
 * Subscription options; every field has a default (group `"default"`, prefetch 256 — at least
 * `Broker.atMostOncePrefetch` on at-most-once brokers — from the earliest
 * retained message for a new group).
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly group?: string | undefined
  readonly prefetch?: number | undefined
  readonly startFrom?: StartFrom | undefined
}

/**
 * The subscriber service.
 *
 * @category models
 * @since 0.1.0
 */
export interface SubscriberShape {
  /** Opens a subscription in the current scope; resolves once the broker registered it. */
  readonly open: <A>(
    topic: Topic<A>,
    options?: Options
  ) => Effect.Effect<Stream.Stream<Delivery<A>, SubscribeError>, SubscribeError, Scope.Scope>
  /** A self-contained stream: subscribes when run, unsubscribes when it ends. */
  readonly subscribe: <A>(topic: Topic<A>, options?: Options) => Stream.Stream<Delivery<A>, SubscribeError>
}

/**
 * The subscriber service tag.
 *
 * @category services
 * @since 0.1.0
 */
export class Subscriber extends Context.Service<Subscriber, SubscriberShape>()("@switchyard/core/Subscriber") {}

/**
 * Fills in the defaults of subscription options.
 *
 * @example
 * ```ts
 * import { Subscriber } from "@switchyard/core"
 * const options = Subscriber.resolveOptions({ group: "billing" }) // prefetch and startFrom filled in
 * ```
 * @category options
 * @since 0.1.0
 */
export const resolveOptions = (options?: Options, capabilities?: Capabilities): SubscribeOptions => ({
  group: options?.group ?? defaultSubscribeOptions.group,
  prefetch: options?.prefetch ??
    (capabilities === undefined ? defaultSubscribeOptions.prefetch : defaultPrefetch(capabilities, defaultSubscribeOptions.prefetch)),
  startFrom: options?.startFrom ?? defaultSubscribeOptions.startFrom
})

/**
 * Decodes a raw delivery with a topic's codec (pure). Any `RawDelivery` works, including class instances
 * whose `nack` is a prototype method that uses `this`: the delivery calls it on the raw delivery.
 *
 * @example
 * ```ts
 * import { Result, Schema } from "effect"
 * import { Broker, Subscriber, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * declare const raw: Broker.RawDelivery
 * const delivery = Subscriber.decode(orders, raw)
 * if (Result.isSuccess(delivery.value)) console.log(delivery.value.success.id)
 * ```
 * @category decoding
 * @since 0.1.0
 */
export const decode = <A>(topic: Topic<A>, raw: RawDelivery): Delivery<A> => {
  const decoded = topic.codec.decode(raw.envelope.payload)
  return {
    envelope: raw.envelope,
    value: Result.isSuccess(decoded)
      ? Result.succeed(decoded.success)
      : Result.fail(new DecodeError({ destination: topic.name, message: decoded.failure.message })),
    unknownType: Result.isFailure(decoded) ? decoded.failure.unknownType : undefined,
    // Read once (a getter runs with the raw delivery as `this`); `nack` is called as a method of it, never
    // copied off it unbound.
    ack: raw.ack,
    nack: (options) => raw.nack(options),
    deliveryLimit: raw.deliveryLimit
  }
}

/**
 * Builds the subscriber on top of the `Broker` service.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<SubscriberShape, never, Broker> = Broker.useSync((broker) => {
  const open = <A>(topic: Topic<A>, options?: Options) =>
    Effect.map(
      broker.subscribe(topic.name, resolveOptions(options, broker.capabilities)),
      (subscription) => Stream.map(subscription.deliveries, (raw) => decode(topic, raw))
    )
  return Subscriber.of({
    open,
    subscribe: (topic, options) => Stream.unwrap(open(topic, options))
  })
})

/**
 * The subscriber layer, built on whichever `Broker` is provided.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Subscriber, never, Broker> = Layer.effect(Subscriber, make)

/**
 * A stream of decoded deliveries; settle each with `ack` / `nack`.
 *
 * @example
 * ```ts
 * import { Effect, Schema, Stream } from "effect"
 * import { Subscriber, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const firstTen = Subscriber.subscribe(orders, { group: "audit" }).pipe(
 *   Stream.take(10),
 *   Stream.mapEffect((delivery) => delivery.ack),
 *   Stream.runDrain
 * )
 * ```
 * @category subscribing
 * @since 0.1.0
 */
export const subscribe = <A>(topic: Topic<A>, options?: Options): Stream.Stream<Delivery<A>, SubscribeError, Subscriber> =>
  Stream.unwrap(Subscriber.useSync((subscriber) => subscriber.subscribe(topic, options)))
