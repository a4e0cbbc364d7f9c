/**
 * JetStream subscribe: a durable pull consumer per group (`consume`, `max_messages` = prefetch), nats.js's
 * callback → the kit's `DeliveryQueue` → `Subscription`. The server bounds what it sends by the consumer's
 * `max_ack_pending`, and the queue holds that many; another member of the group can raise it (it subscribed
 * with a larger prefetch), and then what does not fit is handed back to the server (`nak` with a short
 * delay: redelivered, never lost) and counted in `switchyard_nats_jetstream_overflow`.
 *
 * On close (and on `stopIntake`) everything held is handed back with a 250 ms redelivery delay rather than
 * at once: on nats-server 2.9.10 an immediate `nak` of a message still in this member's pull request was
 * lost until ack-wait expired. A `working()` heartbeat keeps unsettled deliveries from expiring.
 */
import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream"
import type { NatsConnection as RawConnection } from "@nats-io/transport-node"
import { type Broker, Errors } from "@switchyard/core"
import { DeliveryQueue } from "@switchyard/core/adapter"
import { Duration, Effect, Metric, Queue, Result, Schedule, type Scope, Stream } from "effect"
import type { ConsumerSettings } from "../NatsTopology.ts"
import { Delivery, type DeliveryContext } from "./delivery.ts"
import { apiCodes, isApiError, subscribeError } from "./errors.ts"
import { deliveryLimitOf, ensureConsumer, type Streams } from "./provision.ts"

/** What the JetStream paths share. */
export interface JetStreamContext {
  readonly nc: RawConnection
  readonly client: JetStreamClient
  readonly manager: JetStreamManager
  readonly streams: Streams
  readonly settingsFor: (destination: string) => ConsumerSettings
  readonly now: () => number
}

/** Redelivery delay of what a closing member hands back (see the module doc). */
const handBackDelayMillis = 250
/** How long a closing member lets in-transit messages arrive (each is handed back) before stopping its pull. */
const closeSettle = Duration.millis(50)

/**
 * Deliveries a JetStream subscription handed back because its queue was full (see the module doc).
 */
export const overflowedDeliveries = Metric.counter("switchyard_nats_jetstream_overflow", {
  description: "JetStream deliveries handed back to the server because the subscription's queue was full",
  incremental: true
})

/** How long signals are gathered before one warning reports them. */
const reportWindow = Duration.seconds(1)

/**
 * A counter of one subscription and a reporter that logs each burst of it once (not once per message).
 * `signal` is synchronous (called from nats.js callbacks).
 */
export const burstCounter = Effect.fn("NatsBroker.burstCounter")(function*(
  metric: Metric.Metric<number, Metric.CounterState<number>>,
  attributes: Record<string, string>,
  warning: string,
  details: Record<string, unknown>
) {
  const counter = Metric.withAttributes(metric, attributes)
  const services = yield* Effect.context<never>()
  const wakeUps = yield* Queue.sliding<void>(1)
  yield* Queue.take(wakeUps).pipe(
    Effect.andThen(Effect.sleep(reportWindow)),
    Effect.andThen(Metric.value(counter)),
    Effect.flatMap((state) => Effect.logWarning(warning, { ...details, ...attributes, total: state.count })),
    Effect.forever,
    Effect.forkScoped
  )
  return (): void => {
    counter.updateUnsafe(1, services)
    Queue.offerUnsafe(wakeUps, undefined)
  }
})

const consumerOf = (ctx: JetStreamContext, destination: string, opts: Broker.SubscribeOptions, s: ConsumerSettings) => {
  const register = ctx.streams.streamFor(destination).pipe(
    Effect.flatMap((stream) =>
      ensureConsumer(ctx.manager, stream, destination, opts, s).pipe(Effect.mapError(subscribeError(destination, "consumer")))
    )
  )
  // A cached stream may have been deleted behind our back: forget it and provision again, once.
  return register.pipe(
    Effect.catchIf(
      (e) => isApiError(e.cause, apiCodes.streamNotFound),
      () => Effect.andThen(ctx.streams.forget(destination), register)
    )
  )
}

const attempt = (f: () => unknown): void => {
  Result.try(f)
}

/** Fails the stream when the server deletes the consumer or the pull ends with an error. */
const watch = (
  messages: { readonly status: () => AsyncIterable<{ readonly type: string; readonly description?: string }>; readonly closed: () => Promise<void | Error> },
  queue: DeliveryQueue.DeliveryQueue<Delivery>,
  destination: string
) =>
  Effect.all([
    Effect.promise(() => messages.closed()).pipe(
      Effect.flatMap((result) => result instanceof Error ? Effect.sync(() => queue.fail(subscribeError(destination)(result))) : Effect.void),
      Effect.forkScoped
    ),
    Stream.fromAsyncIterable(messages.status(), (cause) => cause).pipe(
      Stream.runForEach((status) =>
        status.type === "consumer_deleted"
          ? Effect.sync(() =>
            queue.fail(
              new Errors.SubscribeError({
                destination,
                reason: Errors.reason("NotFound", `consumer deleted: ${status.description ?? ""}`)
              })
            )
          )
          : Effect.logDebug("jetstream consumer status", { destination, status: status.type })
      ),
      Effect.ignore,
      Effect.forkScoped
    )
  ])

/** Keeps every unsettled delivery alive: a `working()` once the server last heard about it ackWait/3 ago. */
const heartbeat = (ctx: JetStreamContext, inflight: ReadonlySet<Delivery>, ackWaitMillis: number) => {
  const every = Math.max(25, Math.floor(ackWaitMillis / 6))
  const after = 2 * every
  return Effect.sync(() => {
    const now = ctx.now()
    for (const d of inflight) d.keepAlive(now, after)
  }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(every))), Effect.forkScoped)
}

const handBackAll = (deliveries: Iterable<Delivery>) =>
  Effect.forEach(Array.from(deliveries), (d) => d.handBack(handBackDelayMillis), { discard: true })

const flush = (nc: RawConnection) => Effect.promise(() => nc.flush().catch(() => undefined))

/** Subscribes a member of `opts.group` to a destination. */
export const subscribe = Effect.fn("NatsBroker.subscribe")(function*(
  ctx: JetStreamContext,
  destination: string,
  opts: Broker.SubscribeOptions
): Effect.fn.Return<Broker.Subscription, Errors.SubscribeError, Scope.Scope> {
  const settings = ctx.settingsFor(destination)
  const info = yield* consumerOf(ctx, destination, opts, settings)
  const consumer = ctx.client.consumers.getConsumerFromInfo(info)
  const capacity = Math.max(1, opts.prefetch, info.config.max_ack_pending ?? 0)
  const queue = yield* DeliveryQueue.make<Delivery>({ capacity })
  const inflight = new Set<Delivery>()
  const overflowed = yield* burstCounter(
    overflowedDeliveries,
    { "messaging.destination.name": destination, "messaging.consumer.group.name": opts.group },
    "nats jetstream: deliveries handed back because the subscription's queue was full (another member raised the group's max_ack_pending)",
    { capacity }
  )
  const context: DeliveryContext = {
    destination,
    now: ctx.now,
    inflight,
    deliveryLimit: deliveryLimitOf(settings),
    isLive: () => !ctx.nc.isClosed()
  }
  // A delivery the queue refuses (full, or ended by a close) goes back to the server.
  const onMessage = (m: JsMsg): void => {
    const delivery = new Delivery(m, context)
    inflight.add(delivery)
    if (queue.offer(delivery)) return
    inflight.delete(delivery)
    if (queue.size() >= capacity) overflowed()
    attempt(() => m.nak(handBackDelayMillis))
  }
  const messages = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => consumer.consume({ max_messages: Math.max(1, opts.prefetch), callback: onMessage }),
      catch: subscribeError(destination)
    }),
    (messages) =>
      Effect.sync(() => queue.end()).pipe(
        Effect.andThen(Effect.suspend(() => handBackAll(inflight))),
        Effect.andThen(flush(ctx.nc)),
        Effect.andThen(Effect.sleep(closeSettle)),
        Effect.andThen(Effect.promise(() => messages.close().then(() => undefined, () => undefined))),
        Effect.andThen(flush(ctx.nc))
      )
  )
  yield* watch(messages, queue, destination)
  if (settings.heartbeat ?? true) {
    yield* heartbeat(ctx, inflight, Duration.toMillis(Duration.fromInputUnsafe(settings.ackWait ?? "30 seconds")))
  }
  return {
    deliveries: queue.stream,
    stopIntake: Effect.sync(() => queue.end()).pipe(Effect.andThen(queue.drain), Effect.flatMap(handBackAll))
  }
}, (effect, _ctx, destination) => Effect.annotateLogs(effect, { broker: "nats", destination }))

