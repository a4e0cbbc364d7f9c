/**
 * The RabbitMQ implementation of Switchyard's byte-level `Broker` contract, on amqplib.
 *
 * - a destination is a durable topic exchange; a consumer group is a durable queue `<destination>.<group>`
 *   bound to it with `#` (both provisioned on first use, idempotently, unless the user's topology declares them);
 * - publishing goes through one confirm channel per connection: a batch is written without waiting
 *   (pipelined, honouring the channel's `drain`), then all its confirms are awaited; a broker nack or an
 *   unroutable message (`mandatory` + `basic.return`) is a `PublishError`; messages are persistent;
 * - a subscription owns a channel with `basic.qos(prefetch)`; acks go to the channel that delivered, and a
 *   delivery from a channel that has since closed is never acked on a new one (its ack is an `AckError`: the
 *   broker redelivers it);
 * - `nack({ delay })` republishes the message to a per-delay retry queue whose TTL dead-letters it back to the
 *   work queue (no plugin), then acks the original; when the delayed copy cannot be scheduled, it logs a warning
 *   and requeues the original at once instead.
 *
 * @since 0.1.0
 */
import type { ConfirmChannel, ConsumeMessage, Options as AmqpOptions } from "amqplib"
import type { Capabilities, Envelope } from "@switchyard/core"
import { Broker as BrokerModule, Errors, Headers } from "@switchyard/core"
import type { Cause, Scope } from "effect"
import { Config, Deferred, Duration, Effect, Exit, Layer, Queue, Semaphore, Stream } from "effect"
import * as AmqpConnection from "./AmqpConnection.ts"
import * as AmqpRpc from "./AmqpRpc.ts"
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
export const AmqpHeaders = {
  /** `reply-to` property. */
  replyTo: "x-amqp-reply-to",
  /** `priority` property (0-255, needs a queue with `x-max-priority`). */
  priority: "x-amqp-priority",
  /** `expiration` property: per-message TTL in milliseconds. */
  expiration: "x-amqp-expiration",
  /** The delivery attempt carried by delayed retries. */
  attempt: "x-switchyard-attempt"
} as const

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
 * const options: AmqpBroker.Options = { url: "amqp://127.0.0.1", queueType: "quorum", mandatory: true }
 * ```
 * @since 0.1.0
 */
export interface Options extends AmqpConnection.Options {
  /** Queue type of auto-provisioned consumer-group queues (default `"classic"`). */
  readonly queueType?: "classic" | "quorum" | undefined
  /** Publish with `mandatory`: an unroutable message fails with `PublishError` (default `true`). */
  readonly mandatory?: boolean | undefined
  /** Bound on one `publish` call and on opening a subscription, including waiting for a reconnect (default 30 seconds). */
  readonly publishTimeout?: Duration.Input | undefined
}

const internalHeaders = new Set<string>([
  Headers.key,
  Headers.causationId,
  Headers.timestamp,
  Headers.messageId,
  AmqpHeaders.attempt,
  "x-death",
  "x-delivery-count",
  "x-first-death-exchange",
  "x-first-death-queue",
  "x-first-death-reason",
  "x-last-death-exchange",
  "x-last-death-queue",
  "x-last-death-reason"
])

/** @internal */
export const toPublishOptions = (
  message: Envelope.OutgoingMessage,
  mandatory: boolean,
  attempt?: number
): AmqpOptions.Publish => {
  const headers: Record<string, string> = {}
  let replyTo: string | undefined
  let priority: number | undefined
  let expiration: string | undefined
  for (const name in message.headers) {
    const value = message.headers[name]!
    if (name === AmqpHeaders.replyTo) replyTo = value
    else if (name === AmqpHeaders.priority) priority = Number(value)
    else if (name === AmqpHeaders.expiration) expiration = value
    else headers[name] = value
  }
  if (message.key !== undefined) headers[Headers.key] = message.key
  if (message.causationId !== undefined) headers[Headers.causationId] = message.causationId
  headers[Headers.timestamp] = String(message.timestamp)
  if (attempt !== undefined) headers[AmqpHeaders.attempt] = String(attempt)
  const options: AmqpOptions.Publish = {
    persistent: true,
    mandatory,
    messageId: message.id,
    contentType: message.contentType,
    timestamp: Math.floor(message.timestamp / 1000),
    headers
  }
  if (message.correlationId !== undefined) options.correlationId = message.correlationId
  if (replyTo !== undefined) options.replyTo = replyTo
  if (priority !== undefined && Number.isFinite(priority)) options.priority = priority
  if (expiration !== undefined) options.expiration = expiration
  return options
}

/** @internal */
export const toBuffer = (payload: Uint8Array): Buffer =>
  Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)

const headerString = (value: unknown): string | undefined =>
  typeof value === "string"
    ? value
    : typeof value === "number" || typeof value === "boolean" || typeof value === "bigint"
    ? String(value)
    : Buffer.isBuffer(value)
    ? value.toString("utf8")
    : undefined

/** @internal */
export const toOutgoing = (msg: ConsumeMessage): Envelope.OutgoingMessage => {
  const raw = msg.properties.headers ?? {}
  const headers: Record<string, string> = {}
  for (const name in raw) {
    if (internalHeaders.has(name)) continue
    const value = headerString(raw[name])
    if (value !== undefined) headers[name] = value
  }
  const props = msg.properties
  const replyTo = headerString(props.replyTo)
  if (replyTo !== undefined && replyTo !== "") headers[AmqpHeaders.replyTo] = replyTo
  const timestampHeader = headerString(raw[Headers.timestamp])
  const timestamp = timestampHeader !== undefined
    ? Number(timestampHeader)
    : typeof props.timestamp === "number"
    ? props.timestamp * 1000
    : Date.now()
  return {
    id: headerString(props.messageId) ?? headerString(raw[Headers.messageId]) ?? "",
    key: headerString(raw[Headers.key]),
    headers,
    timestamp,
    contentType: headerString(props.contentType) ?? "application/octet-stream",
    payload: new Uint8Array(msg.content.buffer, msg.content.byteOffset, msg.content.byteLength),
    correlationId: headerString(props.correlationId),
    causationId: headerString(raw[Headers.causationId])
  }
}

interface Publisher {
  readonly channel: ConfirmChannel
  readonly returned: Map<string, number>
  closed: boolean
}

interface SendFailure {
  readonly reason: string
  readonly retriable: boolean
  readonly cause?: unknown
}

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

const ackError = (destination: string, reason: string, cause?: unknown) =>
  new Errors.AckError({ destination, reason, ...(cause !== undefined ? { cause } : {}) })

/**
 * A delivery bound to the channel that delivered it.
 *
 * @internal
 */
class AmqpDelivery implements BrokerModule.RawDelivery {
  settled = false
  readonly envelope: Envelope.Envelope
  constructor(readonly message: ConsumeMessage, readonly attached: Attached, readonly context: SubscriptionContext) {
    const outgoing = toOutgoing(message)
    const raw = message.properties.headers ?? {}
    const base = Number(headerString(raw[AmqpHeaders.attempt]) ?? "1") || 1
    const deliveryCount = raw["x-delivery-count"]
    const attempt = typeof deliveryCount === "number"
      ? base + deliveryCount
      : message.fields.redelivered
      ? base + Math.max(1, context.nacks.get(outgoing.id) ?? 1)
      : base
    this.envelope = {
      ...outgoing,
      attempt,
      coordinates: { destination: context.destination, deliveryTag: message.fields.deliveryTag }
    }
  }

  /** Acks, or nacks with requeue, on the channel that delivered; a no-op once settled. */
  settle(kind: "ack" | "nack"): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => {
      if (this.settled) return Effect.void
      this.settled = true
      const { attached, context } = this
      if (attached.closed) {
        return Effect.fail(
          ackError(context.destination, "the channel that delivered this message is closed; it will be redelivered")
        )
      }
      try {
        if (kind === "ack") {
          attached.channel.ack(this.message)
          if (this.message.fields.redelivered) context.nacks.delete(this.envelope.id)
        } else {
          if (context.nacks.size > 10_000) context.nacks.clear()
          context.nacks.set(this.envelope.id, (context.nacks.get(this.envelope.id) ?? 0) + 1)
          attached.channel.nack(this.message, false, true)
        }
        return Effect.void
      } catch (e) {
        return Effect.fail(ackError(context.destination, AmqpConnection.errorMessage(e), e))
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
  const mandatory = options.mandatory ?? true
  const queueType = options.queueType ?? "classic"
  const publishTimeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(options.publishTimeout ?? "30 seconds"))
  const userExchanges = new Set((connection.topology.exchanges ?? []).map((e) => e.name))
  const userQueues = new Set((connection.topology.queues ?? []).map((q) => q.name))
  const provisioned = new Set<string>()

  const provision = (key: string, topology: Topology.Topology) =>
    provisioned.has(key)
      ? Effect.void
      : connection.declare(topology).pipe(Effect.tap(() => Effect.sync(() => provisioned.add(key))))

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
  const ensureDestination = (name: string) => provision(`d:${name}`, destinationTopology(name))
  const ensureGroup = (destination: string, group: string) => {
    const queue = Topology.groupQueueName(destination, group)
    return provision(`g:${queue}`, userQueues.has(queue) ? Topology.empty : Topology.group(destination, group, queueType))
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
          const p: Publisher = { channel, returned: new Map(), closed: false }
          // every in-flight batch listens for the channel closing
          channel.setMaxListeners(0)
          channel.on("return", (msg: ConsumeMessage) => {
            const id = headerString(msg.properties.messageId)
            if (id !== undefined) p.returned.set(id, (p.returned.get(id) ?? 0) + 1)
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

  const send = (
    p: Publisher,
    exchange: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>,
    pending: ReadonlyArray<number>,
    confirmed: Array<boolean>,
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
      const onClose = () => finish(Effect.fail({ reason: "channel closed before confirming", retriable: true }))
      function pump() {
        while (next < pending.length && !done) {
          const index = pending[next++]!
          const message = messages[index]!
          let written: boolean
          try {
            written = channel.publish(
              exchange,
              routingKey ?? message.key ?? "",
              toBuffer(message.payload),
              toPublishOptions(message, mandatory, attempt),
              (err: unknown) => {
                if (done) return
                if (err) {
                  const closed = p.closed || (err instanceof Error && err.message === "channel closed")
                  finish(Effect.fail({
                    reason: closed ? "channel closed before confirming" : "message nacked by the broker",
                    retriable: closed,
                    cause: err
                  }))
                  return
                }
                const returns = p.returned.get(message.id)
                if (returns !== undefined) {
                  if (returns <= 1) p.returned.delete(message.id)
                  else p.returned.set(message.id, returns - 1)
                  finish(Effect.fail({ reason: `message ${message.id} is unroutable (no queue bound)`, retriable: false }))
                  return
                }
                confirmed[index] = true
                if (--remaining === 0) finish(Effect.void)
              }
            )
          } catch (e) {
            finish(Effect.fail({ reason: AmqpConnection.errorMessage(e), retriable: true, cause: e }))
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
  ): Effect.Effect<void, Errors.PublishError> => {
    const confirmed = new Array<boolean>(messages.length).fill(false)
    const toPublishError = (reason: string, cause?: unknown) =>
      new Errors.PublishError({ destination, reason, ...(cause !== undefined ? { cause } : {}) })
    const once: Effect.Effect<void, SendFailure> = Effect.suspend(() => {
      const pending: Array<number> = []
      for (let i = 0; i < messages.length; i++) if (!confirmed[i]) pending.push(i)
      return openPublisher.pipe(
        Effect.mapError((e): SendFailure => ({ reason: e.reason, retriable: true })),
        Effect.flatMap((p) => send(p, exchange, messages, pending, confirmed, attempt, routingKey))
      )
    })
    return once.pipe(
      Effect.retry({ schedule: connection.reconnectSchedule, while: (f: SendFailure) => f.retriable }),
      Effect.mapError((f) => toPublishError(f.reason, f.cause)),
      Effect.timeoutOrElse({
        duration: Duration.millis(publishTimeoutMillis),
        orElse: () => Effect.fail(toPublishError(`not confirmed within ${publishTimeoutMillis}ms`))
      })
    )
  }

  const publish = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    messages.length === 0 ? Effect.succeed([]) : ensureDestination(destination).pipe(
      Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason })),
      Effect.andThen(publishTo(destination, destination, messages)),
      Effect.map(() => messages.map((m) => ({ id: m.id, coordinates: { destination } })))
    )

  // ---------------------------------------------------------------- subscribing
  const retryLater = (delivery: AmqpDelivery, delayMillis: number): Effect.Effect<void, Errors.AckError> => {
    const { context } = delivery
    const queue = Topology.retryQueue(context.queue, delayMillis)
    const scheduleCopy: Effect.Effect<void, Errors.ConnectionError | Errors.PublishError> = provision(
      `r:${queue.name}`,
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
      const subscribeError = (reason: string) => new Errors.SubscribeError({ destination, reason })
      yield* ensureDestination(destination).pipe(Effect.andThen(ensureGroup(destination, options.group)), Effect.mapError((e) => subscribeError(e.reason)))
      const queueName = Topology.groupQueueName(destination, options.group)
      const deliveries = yield* Queue.unbounded<BrokerModule.RawDelivery, Errors.SubscribeError | Cause.Done>()
      const context: SubscriptionContext = { destination, queue: queueName, nacks: new Map(), retry: retryLater }
      let stopping = false

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
              Queue.offerUnsafe(deliveries, new AmqpDelivery(msg, attached, context))
            }, { noAck: false })
          },
          catch: (e) =>
            new Errors.ConnectionError({ broker: connection.label, reason: `consume failed: ${AmqpConnection.errorMessage(e)}` })
        }).pipe(Effect.onError(() => Effect.promise(() => channel.close().catch(() => {}))))
        attached.consumerTag = reply.consumerTag
        return attached
      })

      let attached = yield* attach.pipe(Effect.mapError((e) => subscribeError(e.reason)))

      const keepAttached = Effect.gen(function*() {
        while (true) {
          yield* Deferred.await(attached.closedSignal)
          if (stopping) return
          yield* Effect.logWarning(`subscription to ${queueName} lost its channel; re-attaching`)
          attached = yield* attach.pipe(Effect.retry(connection.reconnectSchedule))
          yield* Effect.logInfo(`subscription to ${queueName} re-attached`)
        }
      }).pipe(
        Effect.catch((e) => Queue.fail(deliveries, subscribeError(e.reason)))
      )
      yield* Effect.forkScoped(keepAttached)

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

      return { deliveries: Stream.fromQueue(deliveries) }
    }).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(publishTimeoutMillis),
        orElse: () =>
          Effect.fail(
            new Errors.SubscribeError({ destination, reason: `not registered within ${publishTimeoutMillis}ms` })
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

  return BrokerModule.Broker.of({ system: "rabbitmq", capabilities, publish, subscribe })
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
