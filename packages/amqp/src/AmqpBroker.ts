/**
 * The RabbitMQ implementation of Switchyard's byte-level `Broker` contract, on amqplib.
 *
 * - a destination is a durable topic exchange; a consumer group is a durable queue `<destination>.<group>`
 *   bound to it with `#` (both provisioned on first use, idempotently, unless the user's topology declares them);
 * - publishing goes through one confirm channel per connection: a batch is written without waiting
 *   (pipelined, honouring the channel's `drain`), then all its confirms are awaited; a broker nack is a
 *   `PublishError`; a message no queue is bound for is logged (default), dropped, or a `PublishError` of kind
 *   `Unroutable` (see {@link Options.unroutable}); messages are persistent. Errors carry a `kind` classified
 *   from amqplib's codes: what the client refuses to encode (`Invalid`, `TooLarge`) fails at once;
 * - a subscription owns a channel with `basic.qos(prefetch)`; acks go to the channel that delivered, and a
 *   delivery from a channel that has since closed is never acked on a new one (its ack is an `AckError`: the
 *   broker redelivers it);
 * - `nack({ delay })` republishes the message to a per-delay retry queue whose TTL dead-letters it back to the
 *   work queue (no plugin), then acks the original; when the delayed copy cannot be scheduled, it logs a warning
 *   and requeues the original at once instead;
 * - `browse` (the base of core's `DeadLetters`) reads the parking queue named after a dead-letter destination
 *   itself: it ends after the messages retained at open, `ack` removes one, `nack` keeps it (requeued when the
 *   read closes); `lag` is a group queue's ready messages; `serverInfo` comes from the server properties.
 *
 * @since 0.1.0
 */
import type { ConfirmChannel, ConsumeMessage } from "amqplib"
import type { Capabilities, Envelope } from "@switchyard/core"
import { Broker as BrokerModule, Errors } from "@switchyard/core"
import type { Cause, Scope } from "effect"
import { Clock, Config, Deferred, Duration, Effect, Exit, Layer, Queue, Semaphore, Stream } from "effect"
import * as AmqpConnection from "./AmqpConnection.ts"
import * as AmqpRpc from "./AmqpRpc.ts"
import * as AmqpBrowse from "./internal/browse.ts"
import * as AmqpEnvelope from "./internal/envelope.ts"
import * as AmqpErrors from "./internal/errors.ts"
import * as AmqpInspect from "./internal/inspect.ts"
import * as Topology from "./Topology.ts"

/**
 * Header names that map to native AMQP properties on publish (and are removed from the headers).
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * const headers = { [AmqpBroker.AmqpHeaders.priority]: "5", [AmqpBroker.AmqpHeaders.expiration]: "60000" }
 * ```
 * @since 0.1.0
 */
export const AmqpHeaders: {
  /** `reply-to` property. */
  readonly replyTo: "x-amqp-reply-to"
  /** `priority` property (0-255, needs a queue with `x-max-priority`; other values are not sent). */
  readonly priority: "x-amqp-priority"
  /** `expiration` property: per-message TTL in milliseconds (a non-negative integer; other values are not sent). */
  readonly expiration: "x-amqp-expiration"
  /** The delivery attempt carried by delayed retries. */
  readonly attempt: "x-switchyard-attempt"
} = AmqpEnvelope.AmqpHeaders

/**
 * What RabbitMQ promises through this adapter.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * AmqpBroker.capabilities.redeliveryDelay // true
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  consumerGroups: true,
  perKeyOrder: false,
  orderedDelivery: true,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: false,
  exactlyOnce: false,
  atMostOnce: false
}

/**
 * Options of the RabbitMQ broker: the connection's, plus publishing and queue settings.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * const options: AmqpBroker.Options = { url: "amqp://127.0.0.1", queueType: "quorum", unroutable: "fail" }
 * ```
 * @since 0.1.0
 */
export interface Options extends AmqpConnection.Options {
  /** Queue type of auto-provisioned consumer-group queues (default `"classic"`). */
  readonly queueType?: "classic" | "quorum" | undefined
  /**
   * What happens to a message no queue is bound for (no consumer group has subscribed to the destination yet,
   * and the topology declares none). RabbitMQ keeps nothing for such a message, as NATS does for a subject
   * nobody listens on:
   * - `"warn"` (default): the publish succeeds and a warning names the destination and the message id
   *   (published with AMQP `mandatory`; the broker returns the message, which costs its bytes once);
   * - `"drop"`: the publish succeeds silently (no `mandatory`, no returns);
   * - `"fail"`: the publish fails with a `PublishError` of kind `Unroutable` (not retryable).
   *
   * To keep messages published before the first consumer starts, declare the group's queue up front:
   * `topology: Topology.consumerGroup("orders", "email")`.
   *
   * @since 0.2.0
   */
  readonly unroutable?: "warn" | "drop" | "fail" | undefined
  /**
   * @deprecated Use `unroutable`: `mandatory: true` is `unroutable: "fail"`, `false` is `"drop"`.
   */
  readonly mandatory?: boolean | undefined
  /** Bound on one `publish` call and on opening a subscription, including waiting for a reconnect (default 30 seconds). */
  readonly publishTimeout?: Duration.Input | undefined
}

/** @internal */
export const toPublishOptions = AmqpEnvelope.toPublishOptions

/** @internal */
export const toBuffer = AmqpEnvelope.toBuffer

interface Publisher {
  readonly channel: ConfirmChannel
  readonly returned: Map<string, number>
  closed: boolean
  /** The broker's reason when it closed the channel (its `error` event comes before `close`). */
  closeError: unknown
}

interface SendFailure {
  readonly reason: string
  readonly kind: Errors.ErrorKind
  readonly cause?: unknown
}

const sendFailure = (reason: string, kind: Errors.ErrorKind, cause?: unknown): SendFailure =>
  cause === undefined ? { reason, kind } : { reason, kind, cause }

interface Attached {
  readonly channel: import("amqplib").Channel
  readonly closedSignal: Deferred.Deferred<void>
  closed: boolean
  consumerTag: string
}

interface SubscriptionContext {
  readonly destination: string
  readonly queue: string
  /** Nacks (requeue) seen in this process per message id, for classic queues without a delivery count. */
  readonly nacks: Map<string, number>
  readonly retry: (delivery: AmqpDelivery, delayMillis: number) => Effect.Effect<void, Errors.AckError>
}

const ackError = (destination: string, reason: string, kind: Errors.ErrorKind, cause?: unknown) =>
  new Errors.AckError({ destination, reason, kind, ...(cause !== undefined ? { cause } : {}) })

/**
 * A delivery bound to the channel that delivered it.
 *
 * @internal
 */
class AmqpDelivery implements BrokerModule.RawDelivery {
  settled = false
  readonly envelope: Envelope.Envelope
  /** The id the message carries (undefined when it has none): the key of the classic-queue nack count. */
  readonly carriedId: string | undefined
  constructor(
    readonly message: ConsumeMessage,
    readonly attached: Attached,
    readonly context: SubscriptionContext,
    now: () => number
  ) {
    const raw = message.properties.headers ?? {}
    this.carriedId = AmqpEnvelope.carriedId(message)
    const base = Number(AmqpEnvelope.headerString(raw[AmqpHeaders.attempt]) ?? "1") || 1
    const deliveryCount = raw["x-delivery-count"]
    const attempt = typeof deliveryCount === "number"
      ? base + deliveryCount
      : message.fields.redelivered
      ? base + Math.max(1, (this.carriedId === undefined ? undefined : context.nacks.get(this.carriedId)) ?? 1)
      : base
    this.envelope = AmqpEnvelope.toEnvelope(message, context.destination, attempt, now)
  }

  /**
   * Acks, or nacks with requeue, on the channel that delivered; a no-op once settled. `release` requeues
   * a delivery that was never handed out (shutdown), without counting it as a failed attempt.
   */
  settle(kind: "ack" | "nack" | "release"): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => {
      if (this.settled) return Effect.void
      this.settled = true
      const { attached, context, carriedId } = this
      if (attached.closed) {
        return Effect.fail(
          ackError(
            context.destination,
            "the channel that delivered this message is closed; it will be redelivered",
            "BrokerClosed"
          )
        )
      }
      try {
        if (kind === "ack") {
          attached.channel.ack(this.message)
          if (this.message.fields.redelivered && carriedId !== undefined) context.nacks.delete(carriedId)
        } else {
          if (kind === "nack" && carriedId !== undefined) {
            if (context.nacks.size > 10_000) context.nacks.clear()
            context.nacks.set(carriedId, (context.nacks.get(carriedId) ?? 0) + 1)
          }
          attached.channel.nack(this.message, false, true)
        }
        return Effect.void
      } catch (e) {
        return Effect.fail(ackError(context.destination, AmqpConnection.errorMessage(e), AmqpErrors.classify(e), e))
      }
    })
  }

  get ack(): Effect.Effect<void, Errors.AckError> {
    return this.settle("ack")
  }

  nack(options?: BrokerModule.NackOptions): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => {
      const delayMillis = options?.delay === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(options.delay))
      if (delayMillis <= 0 || this.settled) return this.settle("nack")
      return this.context.retry(this, Math.round(delayMillis))
    })
  }
}

const kindOf = (e: { readonly kind?: Errors.ErrorKind | undefined }): { readonly kind?: Errors.ErrorKind } =>
  e.kind === undefined ? {} : { kind: e.kind }

/**
 * The RabbitMQ attributes of a delivered message's `process` span (OpenTelemetry semantic conventions):
 * the routing key it was published with and its delivery tag.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * import type { Envelope } from "@switchyard/core"
 * declare const envelope: Envelope.Envelope
 * AmqpBroker.telemetryAttributes(envelope) // { "messaging.rabbitmq.destination.routing_key": "eu", ... }
 * ```
 * @since 0.2.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => {
  const { deliveryTag, routingKey } = envelope.coordinates
  const attributes: Record<string, string | number> = {}
  if (routingKey !== undefined) attributes["messaging.rabbitmq.destination.routing_key"] = routingKey
  if (deliveryTag !== undefined) attributes["messaging.rabbitmq.message.delivery_tag"] = deliveryTag
  return attributes
}

/**
 * Builds the `Broker` service on an `AmqpConnection`, in the current scope. Closing the scope waits for
 * outstanding confirms (bounded) and closes the publishing channel.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Broker } from "@switchyard/core"
 * import { AmqpBroker, AmqpConnection } from "@switchyard/amqp"
 * const BrokerLive = Layer.effect(Broker.Broker, AmqpBroker.make({})).pipe(
 *   Layer.provide(AmqpConnection.layer({ url: "amqp://127.0.0.1" }))
 * )
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(options: Omit<Options, keyof AmqpConnection.Options>) {
  const connection = yield* AmqpConnection.AmqpConnection
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const unroutable = options.unroutable ?? (options.mandatory === undefined ? "warn" : options.mandatory ? "fail" : "drop")
  const mandatory = unroutable !== "drop"
  const queueType = options.queueType ?? "classic"
  const publishTimeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(options.publishTimeout ?? "30 seconds"))
  const userExchanges = new Set((connection.topology.exchanges ?? []).map((e) => e.name))
  const userQueues = new Set((connection.topology.queues ?? []).map((q) => q.name))

  const destinationTopology = (name: string): Topology.Topology => {
    const exchanges = userExchanges.has(name) ? [] : [{ name, type: "topic" as const, durable: true }]
    // Dead letters must never be dropped for lack of a subscriber: a `.dlq` destination gets a parking queue.
    const parking = name.endsWith(".dlq") && !userQueues.has(name)
    return {
      exchanges,
      queues: parking ? [{ name, type: "classic", durable: true }] : [],
      bindings: parking ? [{ source: name, destination: name, pattern: "#" }] : []
    }
  }
  // `connection.declare` is the one cache: concurrent first uses share one declaration.
  const ensureDestination = (name: string) => connection.declare(destinationTopology(name))
  const ensureGroup = (destination: string, group: string) => {
    const queue = Topology.groupQueueName(destination, group)
    return userQueues.has(queue) ? Effect.void : connection.declare(Topology.group(destination, group, queueType))
  }

  // ---------------------------------------------------------------- publishing
  let publisher: Publisher | undefined
  const publisherLock = Semaphore.makeUnsafe(1)
  const openPublisher: Effect.Effect<Publisher, Errors.ConnectionError> = Effect.suspend(() => {
    if (publisher !== undefined && !publisher.closed) return Effect.succeed(publisher)
    return publisherLock.withPermit(Effect.suspend(() => {
      if (publisher !== undefined && !publisher.closed) return Effect.succeed(publisher)
      return connection.current.pipe(
        Effect.flatMap(connection.openConfirmChannel),
        Effect.map((channel) => {
          const p: Publisher = { channel, returned: new Map(), closed: false, closeError: undefined }
          // every in-flight batch listens for the channel closing
          channel.setMaxListeners(0)
          channel.on("return", (msg: ConsumeMessage) => {
            const id = AmqpEnvelope.headerString(msg.properties.messageId)
            if (id !== undefined) p.returned.set(id, (p.returned.get(id) ?? 0) + 1)
          })
          channel.on("error", (error: unknown) => {
            p.closeError = error
          })
          channel.on("close", () => {
            p.closed = true
          })
          publisher = p
          return p
        })
      )
    }))
  })

  // Unroutable messages under `unroutable: "warn"`: the first per destination is logged, then every 1000th.
  const unroutableCounts = new Map<string, number>()
  const warnUnroutable = (destination: string, ids: ReadonlyArray<string>): Effect.Effect<void> => {
    if (ids.length === 0) return Effect.void
    const before = unroutableCounts.get(destination) ?? 0
    const after = before + ids.length
    unroutableCounts.set(destination, after)
    if (before !== 0 && Math.floor(before / 1000) === Math.floor(after / 1000)) return Effect.void
    return Effect.logWarning(
      `${after} message(s) to ${destination} were dropped by RabbitMQ since start, e.g. ${ids[0]}: no queue is ` +
        `bound to the exchange (no consumer group has subscribed yet). Declare the group's queue in the topology ` +
        `(Topology.consumerGroup) to keep them, or set unroutable: "drop" or "fail".`
    )
  }

  /** Why the publisher channel closed: the broker's reply code and text when it closed it, else a retryable close. */
  const closedFailure = (p: Publisher, cause?: unknown): SendFailure => {
    const error = p.closeError ?? cause
    return error === undefined || AmqpErrors.codeOf(error) === undefined
      ? sendFailure("channel closed before confirming", "BrokerClosed", cause)
      : sendFailure(AmqpConnection.errorMessage(error), AmqpErrors.classify(error), error)
  }

  const send = (
    p: Publisher,
    exchange: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>,
    pending: ReadonlyArray<number>,
    confirmed: Array<boolean>,
    returned: Array<string>,
    attempt: number | undefined,
    routingKey: string | undefined
  ) =>
    Effect.callback<void, SendFailure>((resume) => {
      const channel = p.channel
      let remaining = pending.length
      let next = 0
      let done = false
      const finish = (effect: Effect.Effect<void, SendFailure>) => {
        if (done) return
        done = true
        channel.off("drain", pump)
        channel.off("close", onClose)
        resume(effect)
      }
      const onClose = () => finish(Effect.fail(closedFailure(p)))
      function pump() {
        while (next < pending.length && !done) {
          const index = pending[next++]!
          const message = messages[index]!
          const options = AmqpEnvelope.toPublishOptions(message, mandatory, attempt)
          let written: boolean
          try {
            written = channel.publish(
              exchange,
              routingKey ?? message.key ?? "",
              toBuffer(message.payload),
              options,
              (err: unknown) => {
                if (done) return
                if (err) {
                  finish(Effect.fail(
                    p.closed || (err instanceof Error && err.message === "channel closed")
                      ? closedFailure(p, err)
                      : sendFailure("message nacked by the broker", "Unknown", err)
                  ))
                  return
                }
                const returnedId = options.messageId ?? ""
                const returns = p.returned.get(returnedId)
                if (returns !== undefined) {
                  if (returns <= 1) p.returned.delete(returnedId)
                  else p.returned.set(returnedId, returns - 1)
                  if (unroutable === "fail") {
                    finish(Effect.fail(
                      sendFailure(`message ${message.id} is unroutable (no queue bound)`, "Unroutable")
                    ))
                    return
                  }
                  returned.push(message.id)
                }
                confirmed[index] = true
                if (--remaining === 0) finish(Effect.void)
              }
            )
          } catch (e) {
            // amqplib refused to encode the frame (nothing was written), or the channel is already closed
            const kind = AmqpErrors.classify(e)
            finish(Effect.fail(
              kind === "BrokerClosed"
                ? closedFailure(p, e)
                : sendFailure(`message ${message.id}: ${AmqpConnection.errorMessage(e)}`, kind, e)
            ))
            return
          }
          if (!written) {
            channel.once("drain", pump)
            return
          }
        }
      }
      if (remaining === 0) return resume(Effect.void)
      channel.on("close", onClose)
      pump()
      return Effect.sync(() => {
        done = true
        channel.off("drain", pump)
        channel.off("close", onClose)
      })
    })

  const publishTo = (
    destination: string,
    exchange: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>,
    attempt?: number,
    routingKey?: string
  ): Effect.Effect<void, Errors.PublishError> =>
    // per run, shared by its retries: an Effect value may be run again (e.g. `Effect.repeat`)
    Effect.suspend(() => {
      const confirmed = new Array<boolean>(messages.length).fill(false)
      const returned: Array<string> = []
      const toPublishError = (failure: SendFailure) =>
        new Errors.PublishError({
          destination,
          reason: failure.reason,
          kind: failure.kind,
          ...(failure.cause !== undefined ? { cause: failure.cause } : {})
        })
      const once: Effect.Effect<void, SendFailure> = Effect.suspend(() => {
        const pending: Array<number> = []
        for (let i = 0; i < messages.length; i++) if (!confirmed[i]) pending.push(i)
        return openPublisher.pipe(
          Effect.mapError((e): SendFailure => sendFailure(e.reason, e.kind ?? "Unknown")),
          Effect.flatMap((p) => send(p, exchange, messages, pending, confirmed, returned, attempt, routingKey))
        )
      })
      return once.pipe(
        // only what may succeed on a new channel is retried: an encoding error fails at once
        Effect.retry({ schedule: connection.reconnectSchedule, while: (f: SendFailure) => Errors.isRetryableKind(f.kind) }),
        Effect.mapError(toPublishError),
        Effect.timeoutOrElse({
          duration: Duration.millis(publishTimeoutMillis),
          orElse: () =>
            Effect.fail(toPublishError(sendFailure(`not confirmed within ${publishTimeoutMillis}ms`, "Timeout")))
        }),
        Effect.tap(() => warnUnroutable(destination, returned))
      )
    })

  const publish = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    messages.length === 0 ? Effect.succeed([]) : ensureDestination(destination).pipe(
      Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason, ...kindOf(e) })),
      Effect.andThen(publishTo(destination, destination, messages)),
      Effect.map(() => messages.map((m) => ({ id: m.id, coordinates: { destination } })))
    )

  // ---------------------------------------------------------------- subscribing
  const retryLater = (delivery: AmqpDelivery, delayMillis: number): Effect.Effect<void, Errors.AckError> => {
    const { context } = delivery
    const queue = Topology.retryQueue(context.queue, delayMillis)
    const scheduleCopy: Effect.Effect<void, Errors.ConnectionError | Errors.PublishError> = connection.declare(
      { queues: [queue] }
    ).pipe(
      Effect.andThen(
        publishTo(context.destination, "", [delivery.envelope], delivery.envelope.attempt + 1, queue.name)
      )
    )
    return scheduleCopy.pipe(
      Effect.matchEffect({
        onSuccess: () => delivery.settle("ack"),
        // Never leave the delivery unsettled on a live channel (it would hold a prefetch slot and not come back
        // until the channel closes): without a delayed copy, requeue it now.
        onFailure: (e) =>
          Effect.logWarning(
            `could not schedule the delayed retry of message ${delivery.envelope.id} on ${queue.name} ` +
              `(${e.reason}); requeueing it immediately instead`
          ).pipe(
            Effect.andThen(delivery.settle("nack")),
            Effect.mapError((requeue) =>
              ackError(
                context.destination,
                `scheduling the delayed retry failed (${e.reason}) and requeueing failed: ${requeue.reason}`,
                requeue.kind ?? "Unknown",
                requeue
              )
            )
          )
      })
    )
  }

  const subscribe = (
    destination: string,
    options: BrokerModule.SubscribeOptions
  ): Effect.Effect<BrokerModule.Subscription, Errors.SubscribeError, Scope.Scope> =>
    Effect.gen(function*() {
      const subscribeError = (e: { readonly reason: string; readonly kind?: Errors.ErrorKind | undefined }) =>
        new Errors.SubscribeError({ destination, reason: e.reason, ...kindOf(e) })
      yield* ensureDestination(destination).pipe(
        Effect.andThen(ensureGroup(destination, options.group)),
        Effect.mapError(subscribeError)
      )
      const queueName = Topology.groupQueueName(destination, options.group)
      const deliveries = yield* Queue.unbounded<AmqpDelivery, Errors.SubscribeError | Cause.Done>()
      const context: SubscriptionContext = { destination, queue: queueName, nacks: new Map(), retry: retryLater }
      let stopping = false
      const intakeStopped = Deferred.makeUnsafe<void>()

      const attach: Effect.Effect<Attached, Errors.ConnectionError> = Effect.gen(function*() {
        const live = yield* connection.current
        const channel = yield* connection.openChannel(live)
        const attached: Attached = { channel, closedSignal: Deferred.makeUnsafe<void>(), closed: false, consumerTag: "" }
        channel.on("close", () => {
          attached.closed = true
          Deferred.doneUnsafe(attached.closedSignal, Exit.void)
        })
        const reply = yield* Effect.tryPromise({
          try: async () => {
            await channel.prefetch(Math.max(1, options.prefetch))
            return channel.consume(queueName, (msg) => {
              if (msg === null) {
                // cancelled by the server (queue deleted): drop the channel, the loop re-attaches
                channel.close().catch(() => {})
                return
              }
              Queue.offerUnsafe(deliveries, new AmqpDelivery(msg, attached, context, now))
            }, { noAck: false })
          },
          catch: (e) =>
            new Errors.ConnectionError({
              broker: connection.label,
              reason: `consume failed: ${AmqpConnection.errorMessage(e)}`,
              kind: AmqpErrors.classify(e)
            })
        }).pipe(Effect.onError(() => Effect.promise(() => channel.close().catch(() => {}))))
        attached.consumerTag = reply.consumerTag
        return attached
      })

      let attached = yield* attach.pipe(Effect.mapError(subscribeError))

      const keepAttached = Effect.gen(function*() {
        while (true) {
          yield* Deferred.await(attached.closedSignal)
          if (stopping || Deferred.isDoneUnsafe(intakeStopped)) return
          yield* Effect.logWarning(`subscription to ${queueName} lost its channel; re-attaching`)
          attached = yield* attach.pipe(Effect.retry(connection.reconnectSchedule))
          yield* Effect.logInfo(`subscription to ${queueName} re-attached`)
        }
      }).pipe(
        Effect.catch((e) => Queue.fail(deliveries, subscribeError(e)))
      )
      yield* Effect.forkScoped(keepAttached)

      // Deliveries still buffered here were never handed out: back to the queue at once, for other members.
      const releaseBuffered = Effect.flatMap(Queue.clear(deliveries), (buffered) =>
        Effect.forEach(buffered, (delivery) => Effect.ignore(delivery.settle("release")), { discard: true }))

      // The consumer stopped reading (shutdown began, or the stream ended): stop intake, give back the buffer.
      // Once: the Consumer calls it on shutdown and the stream's end calls it again.
      const stopIntake = yield* Effect.cached(Effect.suspend(() => {
        Deferred.doneUnsafe(intakeStopped, Exit.void)
        const current = attached
        if (stopping || current.closed) return releaseBuffered
        return Effect.promise(() => current.channel.cancel(current.consumerTag).catch(() => {})).pipe(
          Effect.timeout("5 seconds"),
          Effect.ignore,
          Effect.andThen(releaseBuffered)
        )
      }).pipe(Effect.ignore))

      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          stopping = true
          const current = attached
          if (!current.closed) {
            yield* Effect.promise(async () => {
              await current.channel.cancel(current.consumerTag).catch(() => {})
              await current.channel.close().catch(() => {})
            }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
          }
          Queue.endUnsafe(deliveries)
        })
      )

      const stream: Stream.Stream<BrokerModule.RawDelivery, Errors.SubscribeError> = Stream.fromQueue(deliveries).pipe(
        Stream.ensuring(stopIntake)
      )
      return { deliveries: stream, stopIntake }
    }).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(publishTimeoutMillis),
        orElse: () =>
          Effect.fail(
            new Errors.SubscribeError({
              destination,
              reason: `not registered within ${publishTimeoutMillis}ms`,
              kind: "Timeout"
            })
          )
      })
    )

  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const p = publisher
      if (p === undefined || p.closed) return Effect.void
      return Effect.promise(async () => {
        await p.channel.waitForConfirms().catch(() => {})
        await p.channel.close().catch(() => {})
      }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
    })
  )

  // ---------------------------------------------------------------- operating (dead letters, lag, health)
  // A browse reads the parking queue named after the destination; the adapter's own `<topic>.dlq` is declared
  // first (it may not exist yet when nothing was dead-lettered), any other name must already have one.
  const browse = AmqpBrowse.make({
    connection,
    ensureParking: (name) => (name.endsWith(".dlq") && !userQueues.has(name) ? ensureDestination(name) : Effect.void),
    now
  })

  return BrokerModule.Broker.of({
    system: "rabbitmq",
    capabilities,
    publish,
    subscribe,
    telemetryAttributes,
    browse,
    lag: AmqpInspect.lag(connection),
    serverInfo: AmqpInspect.serverInfo(connection)
  })
})

/**
 * The RabbitMQ broker as a Layer: `Broker`, plus the native `AmqpConnection` and `AmqpRpc` services.
 * A wrong password or an unreachable host fails the Layer with a `ConnectionError` within `connectTimeout`.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { AmqpBroker } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layer({
 *   hostname: "127.0.0.1", username: "guest", password: Redacted.make("guest"),
 *   topology: { exchanges: [{ name: "audit", type: "fanout" }] }
 * })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<BrokerModule.Broker | AmqpConnection.AmqpConnection | AmqpRpc.AmqpRpc, Errors.ConnectionError> =>
  Layer.mergeAll(
    Layer.effect(BrokerModule.Broker, make(options)),
    AmqpRpc.layer
  ).pipe(Layer.provideMerge(AmqpConnection.layer(options)))

/**
 * The RabbitMQ broker configured from `Config` (environment variables `AMQP_URL` or `AMQP_HOST`/`AMQP_PORT`/
 * `AMQP_VHOST`/`AMQP_USERNAME`/`AMQP_PASSWORD`, `AMQP_TLS`, `AMQP_HEARTBEAT`, `AMQP_CONNECTION_NAME`,
 * `AMQP_CONNECT_TIMEOUT`, `AMQP_QUEUE_TYPE`), with optional overrides (e.g. a topology).
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layerConfig()
 * const Orders = AmqpBroker.layerConfig({ prefix: "ORDERS_AMQP", overrides: { queueType: "quorum" } })
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: { readonly prefix?: string | undefined; readonly overrides?: Partial<Options> | undefined } = {}
): Layer.Layer<
  BrokerModule.Broker | AmqpConnection.AmqpConnection | AmqpRpc.AmqpRpc,
  Errors.ConnectionError
> => {
  const prefix = options.prefix ?? "AMQP"
  return Layer.unwrap(
    Effect.gen(function*() {
      const connectionOptions = yield* AmqpConnection.config(prefix)
      const queueType = yield* Config.Literals(["classic", "quorum"], `${prefix}_QUEUE_TYPE`).pipe(
        Config.withDefault("classic" as const)
      )
      return layer({ ...connectionOptions, queueType, ...options.overrides })
    }).pipe(
      Effect.mapError((e) => new Errors.ConnectionError({ broker: "rabbitmq", reason: `invalid configuration: ${e.message}` }))
    )
  )
}
