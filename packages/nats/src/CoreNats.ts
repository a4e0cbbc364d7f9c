/**
 * Core NATS as a `Broker`: subjects with wildcards, queue groups as consumer groups, headers.
 * Honestly at-most-once: no persistence, no redelivery, `ack`/`nack` are no-ops, and a subscription that
 * falls `prefetch` deliveries behind drops what arrives (counted, logged) instead of buffering without bound.
 *
 * @since 0.1.0
 */
import type { Msg, NatsConnection as RawConnection } from "@nats-io/transport-node"
import type { Envelope } from "@switchyard/core"
import { Broker, Capabilities, Errors } from "@switchyard/core"
import { Cause, Clock, Duration, Effect, Layer, Metric, Queue, Stream } from "effect"
import { makeDeliveryQueue } from "./internal/deliveryQueue.ts"
import { coreOrigin, exceedsMaxPayload, fromMessage, reason, toHeaders } from "./internal/envelope.ts"
import { kindOf } from "./internal/errors.ts"
import * as ServerInfo from "./internal/serverInfo.ts"
import { NatsConnection } from "./NatsConnection.ts"

/**
 * What core NATS promises: queue groups, nothing durable, at most once. A subscription holds at most
 * `prefetch` deliveries; what arrives while it is full is dropped and counted (see {@link droppedDeliveries}).
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

/**
 * Deliveries a core NATS subscription dropped because its queue of `prefetch` deliveries was full: the
 * consumer did not keep up, and core NATS has no flow control to slow the publishers (the server drops
 * messages for slow consumers in the same way). Attributes: `messaging.destination.name` (the subscribed
 * subject) and `messaging.consumer.group.name`. Each burst of drops is also logged as a warning.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { CoreNats } from "@switchyard/nats"
 * const dropped = Metric.value(Metric.withAttributes(CoreNats.droppedDeliveries, {
 *   "messaging.destination.name": "orders", "messaging.consumer.group.name": "billing"
 * }))
 * ```
 * @since 0.2.0
 */
export const droppedDeliveries = Metric.counter("switchyard_nats_slow_consumer_dropped", {
  description: "Core NATS deliveries dropped because the subscription's prefetch queue was full",
  incremental: true
})

const settled: Effect.Effect<void, Errors.AckError> = Effect.void
const nackNoop = (): Effect.Effect<void, Errors.AckError> => settled

/** At-most-once: settling is a no-op; the envelope is decoded on first access. */
class CoreDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  constructor(readonly message: Msg, readonly now: () => number) {}
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      this.#envelope = fromMessage(this.message, 1, { destination: this.message.subject }, coreOrigin, this.now)
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
 * Broker-specific OpenTelemetry attributes of a core NATS delivery: the concrete subject it arrived on.
 *
 * @example
 * ```ts
 * import type { Envelope } from "@switchyard/core"
 * import { CoreNats } from "@switchyard/nats"
 * declare const envelope: Envelope.Envelope
 * const attributes = CoreNats.telemetryAttributes(envelope) // { "messaging.nats.subject": "orders.eu" }
 * ```
 * @since 0.2.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => ({
  "messaging.nats.subject": envelope.coordinates.destination
})

/** How long drops are gathered before one warning reports them. */
const dropReportWindow = Duration.seconds(1)

/**
 * Builds the core NATS broker on the current connection.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CoreNats } from "@switchyard/nats"
 * const program = Effect.map(CoreNats.make, (broker) => broker.capabilities.atMostOnce)
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<Broker.BrokerShape, never, NatsConnection> = Effect.gen(function*() {
  const { nc } = yield* NatsConnection
  const clock = yield* Clock.Clock
  const now = (): number => clock.currentTimeMillisUnsafe()

  const publishError = (destination: string, message: Envelope.OutgoingMessage | undefined, cause: unknown) =>
    new Errors.PublishError({
      destination,
      reason: reason(cause),
      kind: kindOf(cause, () => message !== undefined && exceedsMaxPayload(nc, message)),
      cause
    })

  const publish = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    Effect.callback<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>((resume) => {
      const receipts: Array<Envelope.PublishReceipt> = new Array(messages.length)
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i] as Envelope.OutgoingMessage
        // nats.js refuses synchronously (too large, bad subject): classify with the message at hand.
        const refused = sendOne(nc, destination, m)
        if (refused !== undefined) {
          resume(Effect.fail(publishError(destination, m, refused)))
          return
        }
        receipts[i] = { id: m.id, coordinates: { destination } }
      }
      // The PING/PONG round trip proves the server has read everything before it.
      nc.flush().then(
        () => resume(Effect.succeed(receipts)),
        (cause: unknown) => resume(Effect.fail(publishError(destination, undefined, cause)))
      )
    })

  const subscribe = Effect.fnUntraced(function*(destination: string, options: Broker.SubscribeOptions) {
    const capacity = Math.max(1, options.prefetch)
    const queue = yield* makeDeliveryQueue<CoreDelivery>(capacity)
    const dropped = Metric.withAttributes(droppedDeliveries, {
      "messaging.destination.name": destination,
      "messaging.consumer.group.name": options.group
    })
    const services = yield* Effect.context<never>()
    // Woken by every drop, holding one wake-up at most: the reporter logs once per burst, not per message.
    const drops = yield* Queue.sliding<void>(1)
    const onMessage = (err: Error | null, msg: Msg) => {
      if (err !== null) {
        Queue.failCauseUnsafe(
          queue,
          Cause.fail(new Errors.SubscribeError({ destination, reason: reason(err), kind: kindOf(err), cause: err }))
        )
        return
      }
      if (!Queue.offerUnsafe(queue, new CoreDelivery(msg, now))) {
        dropped.updateUnsafe(1, services)
        Queue.offerUnsafe(drops, undefined)
      }
    }
    yield* reportDrops(drops, dropped, destination, options.group, capacity).pipe(Effect.forkScoped)
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const sub = nc.subscribe(destination, { queue: options.group, callback: onMessage })
          await nc.flush()
          return sub
        },
        catch: (cause) => new Errors.SubscribeError({ destination, reason: reason(cause), kind: kindOf(cause), cause })
      }),
      (sub) =>
        Effect.sync(() => {
          if (!sub.isClosed()) sub.unsubscribe()
        }).pipe(Effect.andThen(Queue.end(queue)))
    )
    const subscription: Broker.Subscription = { deliveries: Stream.fromQueue(queue) }
    return subscription
  })

  // No `browse`: core NATS keeps nothing to read back. No `lag` either: nothing is pending anywhere.
  return Broker.Broker.of({
    system: "nats",
    capabilities,
    publish,
    subscribe,
    telemetryAttributes,
    serverInfo: ServerInfo.core(nc)
  })
})

/** Publishes one message; returns what nats.js threw, if it refused it. */
const sendOne = (nc: RawConnection, destination: string, m: Envelope.OutgoingMessage): unknown => {
  try {
    nc.publish(destination, m.payload, { headers: toHeaders(m) })
    return undefined
  } catch (cause) {
    return cause
  }
}

/** Logs each burst of drops once, with the subscription's total so far. */
const reportDrops = (
  drops: Queue.Queue<void>,
  dropped: Metric.Metric<number, Metric.CounterState<number>>,
  destination: string,
  group: string,
  prefetch: number
): Effect.Effect<never> =>
  Queue.take(drops).pipe(
    Effect.andThen(Effect.sleep(dropReportWindow)),
    Effect.andThen(Metric.value(dropped)),
    Effect.flatMap((state) =>
      Effect.logWarning(
        "nats slow consumer: core NATS deliveries dropped while the subscription's queue was full " +
          "(at-most-once; raise prefetch or consume faster)",
        { destination, group, prefetch, droppedTotal: state.count }
      )
    ),
    Effect.forever
  )

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
