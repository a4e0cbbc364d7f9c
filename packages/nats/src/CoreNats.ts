/**
 * Core NATS as a `Broker`: subjects with wildcards, queue groups as consumer groups, headers.
 * Honestly at-most-once: no persistence, no redelivery, `ack`/`nack` are no-ops.
 *
 * @since 0.1.0
 */
import type { Msg } from "@nats-io/transport-node"
import type { Envelope } from "@switchyard/core"
import { Broker, Capabilities, Errors } from "@switchyard/core"
import { Cause, Effect, Layer, Queue, Stream } from "effect"
import { makeDeliveryQueue } from "./internal/deliveryQueue.ts"
import { fromMessage, reason, toHeaders } from "./internal/envelope.ts"
import { NatsConnection } from "./NatsConnection.ts"

/**
 * What core NATS promises: queue groups, nothing durable.
 *
 * @example
 * ```ts
 * import { CoreNats } from "@switchyard/nats"
 * console.log(CoreNats.capabilities.redelivery) // false
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  ...Capabilities.none,
  consumerGroups: true,
  atMostOnce: true
}

const settled: Effect.Effect<void, Errors.AckError> = Effect.void
const nackNoop = (): Effect.Effect<void, Errors.AckError> => settled

/** At-most-once: settling is a no-op; the envelope is decoded on first access. */
class CoreDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  constructor(readonly message: Msg) {}
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      this.#envelope = fromMessage(this.message, 1, { destination: this.message.subject })
    }
    return this.#envelope
  }
  get ack() {
    return settled
  }
  get nack() {
    return nackNoop
  }
}

/**
 * Builds the core NATS broker on the current connection.
 *
 * @example
 * ```ts
 * import { CoreNats } from "@switchyard/nats"
 * const broker = CoreNats.make
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<Broker.BrokerShape, never, NatsConnection> = Effect.gen(function*() {
  const { nc } = yield* NatsConnection

  const publish = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    Effect.tryPromise({
      try: async () => {
        const receipts: Array<Envelope.PublishReceipt> = new Array(messages.length)
        for (let i = 0; i < messages.length; i++) {
          const m = messages[i] as Envelope.OutgoingMessage
          nc.publish(destination, m.payload, { headers: toHeaders(m) })
          receipts[i] = { id: m.id, coordinates: { destination } }
        }
        // The PING/PONG round trip proves the server has read everything before it.
        await nc.flush()
        return receipts
      },
      catch: (cause) => new Errors.PublishError({ destination, reason: reason(cause), cause })
    })

  const subscribe = (destination: string, options: Broker.SubscribeOptions) =>
    Effect.gen(function*() {
      const queue = yield* makeDeliveryQueue<CoreDelivery>()
      const onMessage = (err: Error | null, msg: Msg) => {
        if (err !== null) {
          Queue.failCauseUnsafe(queue, Cause.fail(new Errors.SubscribeError({ destination, reason: reason(err) })))
          return
        }
        Queue.offerUnsafe(queue, new CoreDelivery(msg))
      }
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const sub = nc.subscribe(destination, { queue: options.group, callback: onMessage })
            await nc.flush()
            return sub
          },
          catch: (cause) => new Errors.SubscribeError({ destination, reason: reason(cause), cause })
        }),
        (sub) =>
          Effect.sync(() => {
            if (!sub.isClosed()) sub.unsubscribe()
          }).pipe(Effect.andThen(Queue.end(queue)))
      )
      const subscription: Broker.Subscription = { deliveries: Stream.fromQueue(queue) }
      return subscription
    })

  return { system: "nats", capabilities, publish, subscribe }
})

/**
 * The core NATS `Broker` on an existing `NatsConnection`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CoreNats, NatsConnection } from "@switchyard/nats"
 * const live = CoreNats.layer.pipe(Layer.provide(NatsConnection.layer({ servers: "nats://127.0.0.1:4222" })))
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<Broker.Broker, never, NatsConnection> = Layer.effect(Broker.Broker, make)
