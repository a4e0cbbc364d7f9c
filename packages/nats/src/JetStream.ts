/**
 * JetStream: the durable NATS broker. Streams declared as data, streams provisioned on first use,
 * pipelined publishes resolved on PubAck (`Nats-Msg-Id` dedup), durable pull consumers per group with
 * explicit acks, automatic `working()` heartbeats, ordered consumers for replay and for operators' reads of
 * dead-letter subjects (`Broker.browse`: `ack` deletes the message from the stream), consumer lag and server info.
 *
 * @since 0.1.0
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  type JetStreamClient,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  type PubAck,
  RetentionPolicy,
  StorageType,
  type StreamConfig
} from "@nats-io/jetstream"
import { nanos, NoRespondersError } from "@nats-io/transport-node"
import type { Envelope } from "@switchyard/core"
import { Broker, Capabilities, Errors } from "@switchyard/core"
import { Cause, Clock, Context, Duration, Effect, Layer, Option, Queue, Schedule, Scope, Stream } from "effect"
import * as Browsing from "./internal/browse.ts"
import { makeDeliveryQueue } from "./internal/deliveryQueue.ts"
import { exceedsMaxPayload, fromMessage, type Origin, reason, sanitizeName, toHeaders } from "./internal/envelope.ts"
import { kindOf } from "./internal/errors.ts"
import * as ServerInfo from "./internal/serverInfo.ts"
import { NatsConnection } from "./NatsConnection.ts"

/**
 * A JetStream stream declared as data. Created when missing, updated when it differs.
 *
 * @example
 * ```ts
 * import type { JetStream } from "@switchyard/nats"
 * const orders: JetStream.StreamDeclaration = {
 *   name: "ORDERS", subjects: ["orders.>"], retention: "limits", storage: "file",
 *   maxAge: "7 days", duplicateWindow: "2 minutes"
 * }
 * ```
 * @since 0.1.0
 */
export interface StreamDeclaration extends StreamSettings {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
}

/**
 * Stream settings (also the defaults of streams provisioned on first use).
 *
 * @example
 * ```ts
 * import type { JetStream } from "@switchyard/nats"
 * const settings: JetStream.StreamSettings = { storage: "memory", maxMessages: 100_000 }
 * ```
 * @since 0.1.0
 */
export interface StreamSettings {
  readonly retention?: "limits" | "interest" | "workqueue" | undefined
  readonly storage?: "file" | "memory" | undefined
  readonly maxAge?: Duration.Input | undefined
  readonly maxMessages?: number | undefined
  readonly maxBytes?: number | undefined
  readonly maxMessageSize?: number | undefined
  /** Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate (default 2 minutes). */
  readonly duplicateWindow?: Duration.Input | undefined
  readonly replicas?: number | undefined
  readonly discard?: "old" | "new" | undefined
}

/**
 * Settings of the durable pull consumers created for subscriptions.
 *
 * @example
 * ```ts
 * import type { JetStream } from "@switchyard/nats"
 * const consumer: JetStream.ConsumerSettings = { ackWait: "30 seconds", maxDeliver: 5 }
 * ```
 * @since 0.1.0
 */
export interface ConsumerSettings {
  /** How long the server waits for an ack before redelivering (default 30 seconds). */
  readonly ackWait?: Duration.Input | undefined
  /**
   * Deliveries of a message that may run a handler (default unlimited, -1). The server is asked for one
   * more: that last delivery carries `deliveryLimit` and the `Consumer` dead-letters it (with the reason)
   * instead of running the handler again, so a message whose every attempt crashed the consumer is parked,
   * not dropped by the server.
   */
  readonly maxDeliver?: number | undefined
  /** Redelivery delays after ack-wait expiries (JetStream `backoff`). */
  readonly backoff?: ReadonlyArray<Duration.Input> | undefined
  /** Send `working()` every ackWait/2 for every unsettled delivery (default true). */
  readonly heartbeat?: boolean | undefined
  /** Remove the durable consumer after this much inactivity (default: never). */
  readonly inactiveThreshold?: Duration.Input | undefined
}

/**
 * Options of the JetStream broker.
 *
 * @example
 * ```ts
 * import type { JetStream } from "@switchyard/nats"
 * const options: JetStream.Options = {
 *   streams: [{ name: "ORDERS", subjects: ["orders.>"] }],
 *   consumer: { ackWait: "10 seconds", maxDeliver: 5 }
 * }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** Streams declared as data; they take precedence over first-use provisioning. */
  readonly streams?: ReadonlyArray<StreamDeclaration> | undefined
  /** Settings of streams provisioned on first use (default: file storage, limits retention). */
  readonly defaultStream?: StreamSettings | undefined
  /** Consumer settings of every subscription. */
  readonly consumer?: ConsumerSettings | undefined
  /** Per-destination consumer settings (override `consumer`). */
  readonly consumers?: Readonly<Record<string, ConsumerSettings>> | undefined
  /** Most publishes awaiting their PubAck at once in one `publish` call (default 1024). */
  readonly publishWindow?: number | undefined
  /** JetStream API / PubAck timeout (default 5 seconds). */
  readonly timeout?: Duration.Input | undefined
}

/**
 * What JetStream honestly promises.
 *
 * @example
 * ```ts
 * import { JetStream } from "@switchyard/nats"
 * if (JetStream.capabilities.redeliveryDelay) console.log("nack({ delay }) supported")
 * ```
 * @since 0.1.0
 */
export const capabilities: Capabilities.Capabilities = {
  ...Capabilities.none,
  consumerGroups: true,
  orderedDelivery: true,
  persistent: true,
  redelivery: true,
  redeliveryDelay: true,
  replayForNewSubscribers: true
}

/**
 * A delivery from JetStream: a `RawDelivery` with the JetStream-only settlements.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { JetStream } from "@switchyard/nats"
 * declare const delivery: JetStream.JetStreamDelivery
 * const poison = delivery.term("cannot be parsed")
 * ```
 * @since 0.1.0
 */
export interface JetStreamDelivery extends Broker.RawDelivery {
  /** Terminates the message: never redelivered (counts as a settlement). */
  readonly term: (reason?: string) => Effect.Effect<void, Errors.AckError>
  /** Resets the ack-wait timer now (sent automatically every ackWait/2 anyway). */
  readonly working: Effect.Effect<void, Errors.AckError>
  /** The raw nats.js message. */
  readonly message: JsMsg
}

/**
 * The coordinates of a JetStream delivery: `sequence` is the stream sequence (stable across redeliveries,
 * so `<stream>/<sequence>` is the id of a message that carries none), `consumerSequence` the consumer's
 * delivery sequence, `subject` the concrete subject (the destination may be a wildcard filter).
 *
 * @example
 * ```ts
 * import type { Envelope } from "@switchyard/core"
 * import { JetStream } from "@switchyard/nats"
 * declare const envelope: Envelope.Envelope
 * const stream = JetStream.isJetStreamCoordinates(envelope.coordinates) ? envelope.coordinates.stream : undefined
 * ```
 * @since 0.2.0
 */
export interface Coordinates extends Envelope.Coordinates {
  readonly sequence: number
  readonly stream: string
  readonly consumerSequence: number
  readonly subject: string
}

/**
 * Are these the coordinates of a JetStream delivery?
 *
 * @example
 * ```ts
 * import type { Envelope } from "@switchyard/core"
 * import { JetStream } from "@switchyard/nats"
 * declare const coordinates: Envelope.Coordinates
 * if (JetStream.isJetStreamCoordinates(coordinates)) console.log(coordinates.stream, coordinates.sequence)
 * ```
 * @since 0.2.0
 */
export const isJetStreamCoordinates = (coordinates: Envelope.Coordinates): coordinates is Coordinates =>
  "stream" in coordinates && typeof coordinates.stream === "string" && typeof coordinates.sequence === "number" &&
  "consumerSequence" in coordinates && typeof coordinates.consumerSequence === "number"

/**
 * Broker-specific OpenTelemetry attributes of a JetStream delivery: stream, stream sequence, consumer
 * sequence and concrete subject (`messaging.nats.*`; OpenTelemetry defines no NATS attributes yet).
 *
 * @example
 * ```ts
 * import type { Envelope } from "@switchyard/core"
 * import { JetStream } from "@switchyard/nats"
 * declare const envelope: Envelope.Envelope
 * const attributes = JetStream.telemetryAttributes(envelope) // { "messaging.nats.stream.sequence": 42, ... }
 * ```
 * @since 0.2.0
 */
export const telemetryAttributes = (envelope: Envelope.Envelope): Readonly<Record<string, string | number>> => {
  const c = envelope.coordinates
  if (!isJetStreamCoordinates(c)) {
    return c.sequence === undefined ? {} : { "messaging.nats.stream.sequence": c.sequence }
  }
  return {
    "messaging.nats.stream": c.stream,
    "messaging.nats.stream.sequence": c.sequence,
    "messaging.nats.consumer.sequence": c.consumerSequence,
    "messaging.nats.subject": c.subject
  }
}

/**
 * Is this delivery from JetStream (so `term` / `working` are available)?
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Broker } from "@switchyard/core"
 * import { JetStream } from "@switchyard/nats"
 * declare const d: Broker.RawDelivery
 * const settle = JetStream.isJetStreamDelivery(d) ? d.term("poison") : d.nack()
 * ```
 * @since 0.1.0
 */
export const isJetStreamDelivery = (delivery: Broker.RawDelivery): delivery is JetStreamDelivery =>
  "term" in delivery && "message" in delivery

/**
 * Options of {@link JetStream.replay}.
 *
 * @since 0.1.0
 */
export interface ReplayOptions {
  /** Start at this stream sequence (default: the first message). */
  readonly fromSequence?: number | undefined
  /** Keep following new messages (default false: end once caught up). */
  readonly live?: boolean | undefined
}

/**
 * The native JetStream service, next to the `Broker`: the nats.js clients, stream lookup and replay.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { JetStream } from "@switchyard/nats"
 * const history = Effect.gen(function*() {
 *   const js = yield* JetStream.JetStream
 *   return yield* js.replay("orders").pipe(Stream.runCollect)
 * })
 * ```
 * @since 0.1.0
 */
export class JetStream extends Context.Service<JetStream, {
  readonly client: JetStreamClient
  readonly manager: JetStreamManager
  /** The stream holding a destination, provisioned on first use (cached). */
  readonly streamFor: (destination: string) => Effect.Effect<string, Errors.SubscribeError>
  /** Replays a destination with an ordered consumer (no acks, no durable state). */
  readonly replay: (destination: string, options?: ReplayOptions) => Stream.Stream<Envelope.Envelope, Errors.SubscribeError>
}>()("@switchyard/nats/JetStream") {}

const toStreamConfig = (
  name: string,
  subjects: ReadonlyArray<string>,
  s: StreamSettings
): Partial<StreamConfig> & { name: string } => {
  const cfg: Partial<StreamConfig> & { name: string } = {
    name,
    subjects: [...subjects],
    retention: s.retention === "interest"
      ? RetentionPolicy.Interest
      : s.retention === "workqueue"
      ? RetentionPolicy.Workqueue
      : RetentionPolicy.Limits,
    storage: s.storage === "memory" ? StorageType.Memory : StorageType.File,
    discard: s.discard === "new" ? DiscardPolicy.New : DiscardPolicy.Old,
    duplicate_window: nanos(Duration.toMillis(s.duplicateWindow ?? "2 minutes"))
  }
  if (s.maxAge !== undefined) cfg.max_age = nanos(Duration.toMillis(s.maxAge))
  if (s.maxMessages !== undefined) cfg.max_msgs = s.maxMessages
  if (s.maxBytes !== undefined) cfg.max_bytes = s.maxBytes
  if (s.maxMessageSize !== undefined) cfg.max_msg_size = s.maxMessageSize
  if (s.replicas !== undefined) cfg.num_replicas = s.replicas
  return cfg
}

/** Does a NATS subject pattern (with `*` and `>`) match a subject? @internal */
export const subjectMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    const token = p[i]
    if (token === ">") return s.length > i
    if (i >= s.length) return false
    if (token !== "*" && token !== s[i]) return false
  }
  return p.length === s.length
}

const isApiError = (cause: unknown, code?: number): cause is JetStreamApiError =>
  cause instanceof JetStreamApiError && (code === undefined || cause.code === code)

const STREAM_NOT_FOUND = 10059

/** nats.js reports a publish that no stream answers as "JetStreamNotEnabled" (503 no responders). */
const streamMissing = (cause: unknown): boolean =>
  cause instanceof Error && (cause.name === "JetStreamNotEnabled" || cause.cause instanceof NoRespondersError)

interface DeliveryContext {
  readonly destination: string
  /** The Clock's time, read only for a message without a usable time (never on JetStream, which stores one). */
  readonly now: () => number
  /** Unsettled deliveries; each remembers when the server last heard about it. */
  readonly inflight: Set<Delivery>
  /** The heartbeat's tick count: a clock that costs nothing to read per message. */
  tick: number
  /** `maxDeliver`, when set (the server allows one delivery more, see `ConsumerSettings.maxDeliver`). */
  readonly deliveryLimit: number | undefined
}

/** What a settlement tells the server. */
type Settlement = "ack" | "nak" | "term" | "working"

/**
 * One object per message. Settlement effects are built only when asked for and allocate a single
 * thunk: this is the per-message hot path, so no `Effect.try` option objects and no named closures.
 */
class Delivery implements JetStreamDelivery, Origin {
  #envelope: Envelope.Envelope | undefined
  /** The heartbeat tick at which the server last heard about this delivery (arrival or `working()`). */
  heardAt: number
  constructor(readonly message: JsMsg, readonly context: DeliveryContext) {
    this.heardAt = context.tick
  }
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      const m = this.message
      const info = m.info
      const coordinates: Coordinates = {
        destination: this.context.destination,
        sequence: info.streamSequence,
        stream: info.stream,
        consumerSequence: info.deliverySequence,
        subject: m.subject
      }
      this.#envelope = fromMessage(m, info.deliveryCount, coordinates, this, this.context.now)
    }
    return this.#envelope
  }
  /** The stream holding the message: `<stream>/<sequence>` is its id when it carries none. */
  get stream(): string {
    return this.message.info.stream
  }
  /** The server's stored time of the message (epoch ms). */
  get brokerTimestamp(): number {
    return nanosToMillis(this.message.info.timestampNanos)
  }
  get deliveryLimit(): number | undefined {
    return this.context.deliveryLimit
  }
  get ack(): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => this.settle("ack", undefined))
  }
  // Getters returning closures: safe to pass around unbound, allocated only when used.
  get nack(): (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError> {
    return (options) =>
      Effect.suspend(() =>
        this.settle("nak", options?.delay === undefined ? undefined : Duration.toMillis(options.delay))
      )
  }
  get term(): (reason?: string) => Effect.Effect<void, Errors.AckError> {
    return (why) => Effect.suspend(() => this.settle("term", why))
  }
  get working(): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => this.settle("working", undefined))
  }
  /** Sends the settlement if this delivery is still unsettled; only the first final settlement counts. */
  settle(kind: Settlement, arg: number | string | undefined): Effect.Effect<void, Errors.AckError> {
    const inflight = this.context.inflight
    if (!inflight.has(this)) return Effect.void
    try {
      switch (kind) {
        case "ack":
          inflight.delete(this)
          this.message.ack()
          break
        case "nak":
          inflight.delete(this)
          this.message.nak(typeof arg === "number" ? arg : undefined)
          break
        case "term":
          inflight.delete(this)
          this.message.term(typeof arg === "string" ? arg : undefined)
          break
        case "working":
          this.heardAt = this.context.tick
          this.message.working()
      }
      return Effect.void
    } catch (cause) {
      return Effect.fail(
        new Errors.AckError({ destination: this.context.destination, reason: reason(cause), kind: kindOf(cause), cause })
      )
    }
  }
}

const nanosToMillis = (nanos: number): number => Math.floor(nanos / 1_000_000)

/** The origin of a replayed message (no delivery object to carry it). */
const originOf = (m: JsMsg): Origin => ({ stream: m.info.stream, brokerTimestamp: nanosToMillis(m.info.timestampNanos) })

const closeRedeliveryDelayMillis = 250
const closeSettleMillis = 50

/**
 * Creates the JetStream broker on a connection: the `Broker` and the native `JetStream` service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JetStream } from "@switchyard/nats"
 * const program = JetStream.make({ consumer: { maxDeliver: 5 } })
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const { nc } = yield* NatsConnection
  const clock = yield* Clock.Clock
  const now = (): number => clock.currentTimeMillisUnsafe()
  const timeout = Duration.toMillis(options.timeout ?? "5 seconds")
  const manager = yield* Effect.tryPromise({
    try: () => jetstreamManager(nc, { timeout }),
    catch: (cause) => new Errors.ConnectionError({ broker: "nats-jetstream", reason: reason(cause), kind: kindOf(cause), cause })
  })
  const client = jetstream(nc, { timeout })
  const publishWindow = Math.max(1, options.publishWindow ?? 1024)
  const declared = options.streams ?? []
  const defaultStream = options.defaultStream ?? {}

  // Declared topology first: create or update idempotently.
  yield* Effect.forEach(declared, (decl) =>
    Effect.tryPromise({
      try: async () => {
        const cfg = toStreamConfig(decl.name, decl.subjects, decl)
        try {
          await manager.streams.info(decl.name)
        } catch (cause) {
          if (isApiError(cause, STREAM_NOT_FOUND)) {
            await manager.streams.add({ ...cfg, name: decl.name })
            return
          }
          throw cause
        }
        await manager.streams.update(decl.name, cfg)
      },
      catch: (cause) =>
        new Errors.ConnectionError({
          broker: "nats-jetstream",
          reason: `stream ${decl.name}: ${reason(cause)}`,
          kind: kindOf(cause),
          cause
        })
    }), { discard: true })

  const streams = new Map<string, string>()
  const provision = (destination: string): Promise<string> => {
    for (const decl of declared) {
      if (decl.subjects.some((p) => subjectMatches(p, destination))) return Promise.resolve(decl.name)
    }
    return manager.streams.find(destination).catch(async () => {
      const name = sanitizeName(destination)
      try {
        await manager.streams.add(toStreamConfig(name, [destination], defaultStream))
        return name
      } catch (cause) {
        // Lost a race with another process, or the subject is covered by a stream created meanwhile.
        return manager.streams.find(destination).catch(() => Promise.reject(cause))
      }
    })
  }
  const streamFor = (destination: string): Effect.Effect<string, Errors.SubscribeError> => {
    const known = streams.get(destination)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.tryPromise({
      try: () => provision(destination),
      catch: (cause) =>
        new Errors.SubscribeError({ destination, reason: `provisioning: ${reason(cause)}`, kind: kindOf(cause), cause })
    }).pipe(Effect.tap((name) => Effect.sync(() => streams.set(destination, name))))
  }

  const publishAll = async (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Promise<Array<Envelope.PublishReceipt>> => {
    const receipts: Array<Envelope.PublishReceipt> = new Array(messages.length)
    for (let start = 0; start < messages.length; start += publishWindow) {
      const end = Math.min(start + publishWindow, messages.length)
      const pending: Array<Promise<PubAck>> = []
      for (let i = start; i < end; i++) {
        const m = messages[i] as Envelope.OutgoingMessage
        // A redriven copy keeps its envelope id but needs a broker-level id of its own (`dedupId`), or the
        // duplicate window would swallow it.
        pending.push(client.publish(destination, m.payload, { msgID: m.dedupId ?? m.id, headers: toHeaders(m) }))
      }
      const settled = await Promise.allSettled(pending)
      for (let i = 0; i < settled.length; i++) {
        const r = settled[i] as PromiseSettledResult<PubAck>
        if (r.status === "rejected") {
          const failed = messages[start + i] as Envelope.OutgoingMessage
          throw new Errors.PublishError({
            destination,
            reason: `message ${start + i + 1} of ${messages.length} (${failed.id}): ${reason(r.reason)}`,
            kind: kindOf(r.reason, () => exceedsMaxPayload(nc, failed)),
            cause: r.reason
          })
        }
        receipts[start + i] = {
          id: (messages[start + i] as Envelope.OutgoingMessage).id,
          coordinates: { destination, sequence: r.value.seq }
        }
      }
    }
    return receipts
  }

  const publishOnce = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    streamFor(destination).pipe(
      Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason, kind: e.kind, cause: e.cause })),
      Effect.andThen(Effect.tryPromise({
        try: () => publishAll(destination, messages),
        catch: (cause) =>
          cause instanceof Errors.PublishError
            ? cause
            : new Errors.PublishError({ destination, reason: reason(cause), kind: kindOf(cause), cause })
      }))
    )

  const publish = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    messages.length === 0 ? Effect.succeed([]) : publishOnce(destination, messages).pipe(
      // The stream was deleted behind our back (nobody answers on the subject): provision it again, once.
      Effect.catchIf(
        (e) => streamMissing(e.cause),
        () =>
          Effect.suspend(() => {
            streams.delete(destination)
            return publishOnce(destination, messages)
          })
      )
    )

  const ensureConsumer = (stream: string, destination: string, opts: Broker.SubscribeOptions, s: ConsumerSettings) =>
    Effect.tryPromise({
      try: async () => {
        const durable = sanitizeName(`${opts.group}__${destination}`)
        const updatable = {
          ack_wait: nanos(Duration.toMillis(s.ackWait ?? "30 seconds")),
          max_deliver: s.maxDeliver === undefined || s.maxDeliver < 0 ? -1 : s.maxDeliver + 1,
          max_ack_pending: Math.max(1, opts.prefetch),
          ...(s.backoff !== undefined ? { backoff: s.backoff.map((d) => nanos(Duration.toMillis(d))) } : {}),
          ...(s.inactiveThreshold !== undefined
            ? { inactive_threshold: nanos(Duration.toMillis(s.inactiveThreshold)) }
            : {})
        }
        try {
          return await manager.consumers.add(stream, {
            ...updatable,
            durable_name: durable,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: opts.startFrom === "latest" ? DeliverPolicy.New : DeliverPolicy.All,
            filter_subject: destination
          })
        } catch (cause) {
          // The group exists with other settings (e.g. another prefetch): update what can be updated.
          if (isApiError(cause)) return await manager.consumers.update(stream, durable, updatable)
          throw cause
        }
      },
      catch: (cause) =>
        new Errors.SubscribeError({ destination, reason: `consumer: ${reason(cause)}`, kind: kindOf(cause), cause })
    })

  const subscribe = (
    destination: string,
    opts: Broker.SubscribeOptions
  ): Effect.Effect<Broker.Subscription, Errors.SubscribeError, Scope.Scope> =>
    Effect.gen(function*() {
      const settings: ConsumerSettings = { ...options.consumer, ...options.consumers?.[destination] }
      const register = Effect.suspend(() => streamFor(destination)).pipe(
        Effect.flatMap((stream) => ensureConsumer(stream, destination, opts, settings))
      )
      const info = yield* register.pipe(
        // A cached stream may have been deleted behind our back: forget it and provision again, once.
        Effect.catchIf(
          (e) => isApiError(e.cause, STREAM_NOT_FOUND),
          () => Effect.suspend(() => {
            streams.delete(destination)
            return register
          })
        )
      )
      const consumer = client.consumers.getConsumerFromInfo(info)
      const ackWaitMillis = Duration.toMillis(settings.ackWait ?? "30 seconds")
      const queue = yield* makeDeliveryQueue<Delivery>()
      const inflight = new Set<Delivery>()
      const closing = { value: false }
      const context: DeliveryContext = {
        destination,
        now,
        inflight,
        tick: 0,
        deliveryLimit: settings.maxDeliver === undefined || settings.maxDeliver < 0 ? undefined : settings.maxDeliver
      }
      const messages = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            consumer.consume({
              max_messages: Math.max(1, opts.prefetch),
              callback: (m) => {
                if (closing.value) {
                  // Sent by the server while this member shuts down: give it straight back.
                  try {
                    m.nak(closeRedeliveryDelayMillis)
                  } catch {
                    // connection gone: the server redelivers after ack-wait
                  }
                  return
                }
                const delivery = new Delivery(m, context)
                inflight.add(delivery)
                Queue.offerUnsafe(queue, delivery)
              }
            }),
          catch: (cause) => new Errors.SubscribeError({ destination, reason: reason(cause), kind: kindOf(cause), cause })
        }),
        (messages) =>
          Effect.promise(async () => {
            // Shutdown order matters with pull consumers: the server may still push into this member's
            // pending pull request. So first hand back everything held (and anything still arriving)
            // with a short delay, let in-transit messages arrive, and only then close the pull.
            closing.value = true
            for (const d of inflight) {
              try {
                d.message.nak(closeRedeliveryDelayMillis)
              } catch {
                // connection gone: the server redelivers after ack-wait
              }
            }
            inflight.clear()
            await nc.flush().catch(() => undefined)
          }).pipe(
            Effect.andThen(Effect.sleep(closeSettleMillis)),
            Effect.andThen(Effect.promise(async () => {
              await messages.close().catch(() => undefined)
              await nc.flush().catch(() => undefined)
            })),
            Effect.andThen(Queue.end(queue))
          )
      )
      // A consumer that dies at the server fails the stream instead of hanging.
      void messages.closed().then((result) => {
        if (result instanceof Error) {
          Queue.failCauseUnsafe(
            queue,
            Cause.fail(new Errors.SubscribeError({ destination, reason: reason(result), kind: kindOf(result), cause: result }))
          )
        }
      })
      yield* Stream.fromAsyncIterable(messages.status(), (cause) => cause).pipe(
        Stream.runForEach((status) =>
          status.type === "consumer_deleted"
            ? Effect.sync(() =>
              Queue.failCauseUnsafe(
                queue,
                Cause.fail(
                  new Errors.SubscribeError({
                    destination,
                    reason: `consumer deleted: ${status.description}`,
                    kind: "NotFound"
                  })
                )
              )
            )
            : status.type === "heartbeats_missed" || status.type === "consumer_not_found" ||
                status.type === "stream_not_found"
            ? Effect.logDebug("jetstream consumer status", { destination, status: status.type })
            : Effect.void
        ),
        Effect.ignore,
        Effect.forkScoped
      )
      if (settings.heartbeat ?? true) {
        // Ticks every ackWait/6. A delivery last heard two ticks ago (so at most ackWait/3 ago) gets a
        // `working()`; one that arrived since the previous tick is left alone.
        const every = Math.max(25, Math.floor(ackWaitMillis / 6))
        yield* Effect.sync(() => {
          const tick = ++context.tick
          for (const d of inflight) {
            if (tick - d.heardAt >= 2) {
              d.heardAt = tick
              try {
                d.message.working()
              } catch {
                // disconnected: nats.js cannot send now; the next tick retries
              }
            }
          }
        }).pipe(Effect.repeat(Schedule.spaced(every)), Effect.forkScoped)
      }
      return { deliveries: Stream.fromQueue(queue) }
    }).pipe(Effect.annotateLogs({ broker: "nats", destination }))

  const replay = (destination: string, o: ReplayOptions = {}): Stream.Stream<Envelope.Envelope, Errors.SubscribeError> =>
    Stream.unwrap(Effect.gen(function*() {
      const stream = yield* streamFor(destination)
      const fromSequence = o.fromSequence
      const state = yield* Effect.tryPromise({
        try: () => manager.streams.info(stream, { subjects_filter: destination }),
        catch: (cause) => new Errors.SubscribeError({ destination, reason: reason(cause), kind: kindOf(cause), cause })
      })
      const lastSeq = state.state.last_seq
      if (o.live !== true && (state.state.messages === 0 || (fromSequence !== undefined && fromSequence > lastSeq))) {
        return Stream.empty
      }
      return Stream.callback<Envelope.Envelope, Errors.SubscribeError>((queue) =>
        Effect.acquireRelease(
          Effect.tryPromise({
            try: async () => {
              const consumer = await client.consumers.get(stream, {
                filter_subjects: destination,
                ...(fromSequence !== undefined
                  ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSequence }
                  : { deliver_policy: DeliverPolicy.All })
              })
              return consumer.consume({
                callback: (m) => {
                  Queue.offerUnsafe(
                    queue,
                    fromMessage(m, m.info.deliveryCount, { destination, sequence: m.seq }, originOf(m), now)
                  )
                  if (o.live !== true && (m.info.pending === 0 || m.seq >= lastSeq)) Queue.endUnsafe(queue)
                }
              })
            },
            catch: (cause) => new Errors.SubscribeError({ destination, reason: reason(cause), kind: kindOf(cause), cause })
          }),
          (messages) => Effect.promise(() => messages.close().catch(() => undefined))
        ))
    }))

  // The stream holding a destination, without provisioning one: an operator's read creates nothing.
  const findStream = (destination: string): Effect.Effect<Option.Option<string>, Errors.SubscribeError> => {
    const known = streams.get(destination) ??
      declared.find((decl) => decl.subjects.some((p) => subjectMatches(p, destination)))?.name
    if (known !== undefined) return Effect.succeed(Option.some(known))
    return Effect.tryPromise({
      try: () =>
        manager.streams.find(destination).then(
          (name) => Option.some(name),
          (cause: unknown) => isApiError(cause, STREAM_NOT_FOUND) ? Option.none() : Promise.reject(cause)
        ),
      catch: (cause) =>
        new Errors.SubscribeError({ destination, reason: `stream lookup: ${reason(cause)}`, kind: kindOf(cause), cause })
    })
  }
  const browsing: Browsing.BrowseContext = { client, manager, findStream, now }

  const broker = Broker.Broker.of({
    system: "nats-jetstream",
    capabilities,
    publish,
    subscribe,
    telemetryAttributes,
    browse: (destination, browseOptions) => Browsing.browse(browsing, destination, browseOptions),
    lag: (destination, group) => Browsing.lag(browsing, destination, group),
    serverInfo: ServerInfo.jetStream(nc, manager)
  })
  return { broker, jetStream: JetStream.of({ client, manager, streamFor, replay }) }
})

/**
 * The JetStream `Broker` and native `JetStream` service on an existing `NatsConnection`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { JetStream, NatsConnection } from "@switchyard/nats"
 * const live = JetStream.layer({}).pipe(Layer.provideMerge(NatsConnection.layer({ servers: "nats://127.0.0.1:4222" })))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Broker.Broker | JetStream, Errors.ConnectionError, NatsConnection> =>
  Layer.effectContext(Effect.map(make(options), ({ broker, jetStream }) =>
    Context.make(JetStream, jetStream).pipe(Context.add(Broker.Broker, broker))))
