/**
 * The typed publisher: encodes values with their topic's codec, builds the envelope (id, key, headers,
 * trace context) and hands them to the broker. A publish resolves only when the broker confirmed it.
 *
 * @since 0.1.0
 */
import type { Scope, Tracer } from "effect"
import { Clock, Context, Duration, Effect, Layer, Metric, Result, Sink, Stream } from "effect"
import type { BrokerShape } from "./Broker.ts"
import { Broker } from "./Broker.ts"
import type { OutgoingMessage, PublishOptions, PublishReceipt } from "./Envelope.ts"
import { makeId } from "./Envelope.ts"
import { EncodeError, type PublishError } from "./Errors.ts"
import type { Headers } from "./Headers.ts"
import * as H from "./Headers.ts"
import * as Coalesce from "./internal/publish/coalesce.ts"
import { splitChunks } from "./internal/publish/split.ts"
import * as Telemetry from "./Telemetry.ts"
import type { Topic } from "./Topic.ts"

/**
 * What a publish can fail with: the value could not be encoded (nothing was sent), or the broker did not
 * confirm it.
 *
 * @category models
 * @since 0.1.0
 */
export type PublishFailure = EncodeError | PublishError

/**
 * A value to publish together with its per-message options.
 *
 * @category models
 * @since 0.1.0
 */
export interface Message<A> {
  readonly value: A
  readonly options?: PublishOptions | undefined
}

/**
 * Options of the batching sink.
 *
 * @category models
 * @since 0.1.0
 */
export interface SinkOptions {
  /** Publish when this many values are waiting (default 500). */
  readonly batchSize?: number | undefined
  /** …or when the oldest waiting value is this old (default 10 millis). */
  readonly linger?: Duration.Input | undefined
}

/**
 * The publisher service.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublisherShape {
  /** Publishes one value; resolves with the broker's receipt. */
  readonly publish: <A>(topic: Topic<A>, value: A, options?: PublishOptions) => Effect.Effect<PublishReceipt, PublishFailure>
  /** Publishes values in order, as one batch; fails at the first value the broker did not confirm. */
  readonly publishAll: <A>(
    topic: Topic<A>,
    values: Iterable<A>
  ) => Effect.Effect<ReadonlyArray<PublishReceipt>, PublishFailure>
  /** Like `publishAll`, with per-message options. */
  readonly publishMessages: <A>(
    topic: Topic<A>,
    messages: Iterable<Message<A>>
  ) => Effect.Effect<ReadonlyArray<PublishReceipt>, PublishFailure>
}

/**
 * The publisher service tag.
 *
 * @category services
 * @since 0.1.0
 */
export class Publisher extends Context.Service<Publisher, PublisherShape>()("@switchyard/core/Publisher") {}

/**
 * Encodes a value into an outgoing message (pure; used by the publisher and by tests).
 *
 * @example
 * ```ts
 * import { Result, Schema } from "effect"
 * import { Publisher, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const message = Publisher.encode(orders, { id: "o-1" }, { key: "o-1" }, Date.now(), {})
 * if (Result.isSuccess(message)) console.log(message.success.contentType) // "application/json"
 * ```
 * @category encoding
 * @since 0.1.0
 */
export const encode = <A>(
  topic: Topic<A>,
  value: A,
  options: PublishOptions | undefined,
  now: number,
  headers: Headers
): Result.Result<OutgoingMessage, EncodeError> => {
  const payload = topic.codec.encode(value)
  if (Result.isFailure(payload)) {
    return Result.fail(new EncodeError({ destination: topic.name, message: payload.failure }))
  }
  return Result.succeed({
    id: options?.id ?? makeId(),
    key: options?.key ?? topic.key?.(value),
    // A creation context the caller set (a bridge or redrive forwarding a message) is kept, not replaced.
    headers: options?.headers === undefined ? headers : { ...headers, ...options.headers },
    timestamp: options?.timestamp ?? now,
    contentType: topic.codec.contentType,
    payload: payload.success,
    correlationId: options?.correlationId,
    causationId: options?.causationId
  })
}

/**
 * Builds the publisher on top of the `Broker` service.
 *
 * @category constructors
 * @since 0.1.0
 */
// Concurrent single publishes to one destination go to the broker in batches of up to this many.
const coalescing = { batchSize: 256, capacity: 1024 } as const

const sendEach = (broker: BrokerShape): Coalesce.SendEach =>
  broker.publishEach ??
    ((destination, messages, onConfirmed) =>
      Effect.map(broker.publish(destination, messages, onConfirmed), (receipts) => receipts.map(Result.succeed)))

export const make: Effect.Effect<PublisherShape, never, Broker | Scope.Scope> = Effect.gen(function*() {
  const broker = yield* Broker
  const coalesced = Coalesce.make(
    (destination, messages, onConfirmed) =>
      Effect.tap(sendEach(broker)(destination, messages, onConfirmed), (results) =>
        Metric.update(Telemetry.published, results.filter(Result.isSuccess).length)),
    { ...coalescing, inFlight: broker.publishConcurrency ?? 1 },
    yield* Effect.scope,
    yield* Effect.context<never>()
  )
  const creationLinks = <A>(messages: ReadonlyArray<Message<A>>): Array<Tracer.SpanLink> => {
    const links: Array<Tracer.SpanLink> = []
    for (const message of messages) {
      const context = Telemetry.parseTraceparent(message.options?.headers?.[H.traceparent])
      if (context !== undefined) links.push({ span: context, attributes: {} })
    }
    return links
  }
  // Untraced: `send` opens the one span of a publish call. One message goes through its destination's
  // coalescer (batched with other callers' single publishes); a batch goes to the broker as it is.
  const publishing = Effect.fnUntraced(function*<A>(topic: Topic<A>, messages: ReadonlyArray<Message<A>>, traced: boolean) {
    const now = yield* Clock.currentTimeMillis
    const headers = yield* Telemetry.injectTraceContext({})
    const outgoing: Array<OutgoingMessage> = []
    for (const message of messages) {
      const encoded = encode(topic, message.value, message.options, now, headers)
      if (Result.isFailure(encoded)) return yield* encoded.failure
      outgoing.push(encoded.success)
    }
    const [only] = outgoing
    if (only !== undefined && outgoing.length === 1) {
      // Per-message attributes belong on a span that accounts for exactly one message.
      if (traced) yield* Effect.annotateCurrentSpan(Telemetry.messageAttributes(only))
      return [yield* coalesced.publish(topic.name, only)]
    }
    const receipts = yield* broker.publish(topic.name, outgoing)
    yield* Metric.update(Telemetry.published, receipts.length)
    return receipts
  })
  // One `send <destination>` producer span per publish call; its context is injected into every message
  // that does not carry a creation context of its own, and it links to those that do.
  const send = <A>(topic: Topic<A>, messages: ReadonlyArray<Message<A>>) =>
    Effect.flatMap(Telemetry.tracing, (traced) =>
      traced
        ? Effect.withSpan(publishing(topic, messages, true), Telemetry.spanName("send", topic.name), {
          kind: "producer",
          links: creationLinks(messages),
          attributes: Telemetry.messagingAttributes(
            broker.system,
            topic.name,
            "send",
            messages.length >= 2 ? { "messaging.batch.message_count": messages.length } : undefined
          ),
          captureStackTrace: false
        })
        : publishing(topic, messages, false))
  return Publisher.of({
    publish: (topic, value, options) =>
      Effect.map(send(topic, [{ value, options }]), (receipts) => receipts[0]!),
    publishAll: (topic, values) => send(topic, Array.from(values, (value) => ({ value }))),
    publishMessages: (topic, messages) => send(topic, Array.from(messages))
  })
})

/**
 * The publisher layer, built on whichever `Broker` is provided.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Publisher, never, Broker> = Layer.effect(Publisher, make)

/**
 * Publishes one value and waits for the broker's confirmation.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Publisher, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }), { key: (o) => o.id })
 * const receipt = Publisher.publish(orders, { id: "o-1" }, { correlationId: "req-7" })
 * ```
 * @category publishing
 * @since 0.1.0
 */
export const publish = <A>(topic: Topic<A>, value: A, options?: PublishOptions) =>
  Publisher.use((publisher) => publisher.publish(topic, value, options))

/**
 * Publishes values in order as one batch.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Publisher, Switchyard, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const program = Publisher.publishAll(orders, [{ id: "o-1" }, { id: "o-2" }]).pipe(
 *   Effect.provide(Switchyard.layerMemory())
 * )
 * ```
 * @category publishing
 * @since 0.1.0
 */
export const publishAll = <A>(topic: Topic<A>, values: Iterable<A>) =>
  Publisher.use((publisher) => publisher.publishAll(topic, values))

/**
 * Publishes values with per-message options, in order, as one batch.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Publisher, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const program = Publisher.publishMessages(orders, [
 *   { value: { id: "o-1" }, options: { key: "customer-7", correlationId: "checkout-42" } },
 *   { value: { id: "o-2" } }
 * ])
 * ```
 * @category publishing
 * @since 0.1.0
 */
export const publishMessages = <A>(topic: Topic<A>, messages: Iterable<Message<A>>) =>
  Publisher.use((publisher) => publisher.publishMessages(topic, messages))

/**
 * A `Sink` that publishes what flows into it in batches by size and time, awaiting the broker's
 * confirmation of each batch before pulling more (backpressure).
 *
 * @example
 * ```ts
 * import { Schema, Stream } from "effect"
 * import { Publisher, Topic } from "@switchyard/core"
 * const ticks = Topic.make("ticks", Schema.Number)
 * const program = Stream.range(1, 10_000).pipe(Stream.run(Publisher.sink(ticks, { batchSize: 1000 })))
 * ```
 * @category publishing
 * @since 0.1.0
 */
export const sink = <A>(topic: Topic<A>, options?: SinkOptions): Sink.Sink<void, A, never, PublishFailure, Publisher> =>
  Sink.make<A>()((values) =>
    values.pipe(
      splitChunks(options?.batchSize ?? 500),
      Stream.groupedWithin(options?.batchSize ?? 500, options?.linger ?? Duration.millis(10)),
      Stream.runForEach((batch) => publishAll(topic, batch))
    )
  )
