/**
 * Request-reply over RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no reply queue is declared, replies
 * are matched to requests by correlation id, and a request without an answer in time fails with
 * `RequestTimeoutError` (or `NoRespondersError` when nothing is bound to the destination). When the
 * responder's handler fails or dies (a handler that decodes the request and cannot, too), the requester gets
 * a `RemoteError` with the reason at once, never a timeout: the reply carries it in the
 * `x-switchyard-rpc-error` header, the same contract as `NatsRpc`.
 *
 * @since 0.1.0
 */
import type { Channel, ConsumeMessage } from "amqplib"
import { Envelope, Errors } from "@switchyard/core"
import { DeliveryQueue, Supervisor } from "@switchyard/core/adapter"
import type { Scope } from "effect"
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Layer, Stream } from "effect"
import * as AmqpConnection from "./AmqpConnection.ts"
import * as AmqpTopology from "./AmqpTopology.ts"
import * as Channels from "./internal/channel.ts"
import * as AmqpEnvelope from "./internal/envelope.ts"
import * as AmqpErrors from "./internal/errors.ts"
import * as Provision from "./internal/provision.ts"

/**
 * Header of a reply that reports a responder-side failure instead of a result (the same name as NATS's).
 *
 * @example
 * ```ts
 * import { AmqpRpc } from "@switchyard/amqp"
 * AmqpRpc.errorHeader // "x-switchyard-rpc-error"
 * ```
 * @since 0.2.0
 */
export const errorHeader = "x-switchyard-rpc-error"

/**
 * A request.
 *
 * @example
 * ```ts
 * import type { AmqpRpc } from "@switchyard/amqp"
 * const request: AmqpRpc.Request = { payload: new TextEncoder().encode("sku-1"), key: "eu", timeout: "2 seconds" }
 * ```
 * @since 0.1.0
 */
export interface Request {
  readonly payload: Uint8Array
  readonly key?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly contentType?: string | undefined
  /** Default 5 seconds. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * A reply.
 *
 * @example
 * ```ts
 * import type { AmqpRpc } from "@switchyard/amqp"
 * const text = (reply: AmqpRpc.Reply) => new TextDecoder().decode(reply.payload)
 * ```
 * @since 0.1.0
 */
export interface Reply {
  readonly payload: Uint8Array
  readonly headers: Readonly<Record<string, string>>
  readonly contentType: string
  readonly correlationId: string
}

/**
 * The request-reply service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpRpc } from "@switchyard/amqp"
 * const serveEcho = AmqpRpc.AmqpRpc.use((rpc) => rpc.serve("echo", (req) => Effect.succeed(req.payload)))
 * ```
 * @since 0.1.0
 */
export interface AmqpRpcShape {
  /** Sends a request to a destination (routing key = `key`) and waits for the reply. */
  readonly request: (
    destination: string,
    request: Request
  ) => Effect.Effect<
    Reply,
    Errors.RequestTimeoutError | Errors.NoRespondersError | Errors.RemoteError | Errors.PublishError
  >
  /**
   * Answers requests on a destination (queue `<destination>.rpc`, bound with `#`) until the scope closes.
   * Resolves once the responder is registered. A request whose handler fails or dies is answered with the
   * reason (the requester gets a `RemoteError`) and acknowledged: it is not redelivered. After a dropped
   * connection the responder re-attaches by itself on the connection's reconnect schedule (meanwhile requests
   * get `NoRespondersError`); a request its lost channel had not answered goes with the auto-delete queue, and
   * its requester gets a `RequestTimeoutError`.
   */
  readonly serve: <E, R>(
    destination: string,
    handler: (request: Envelope.OutgoingMessage) => Effect.Effect<Uint8Array, E, R>,
    options?: { readonly concurrency?: number | undefined }
  ) => Effect.Effect<void, Errors.SubscribeError, Scope.Scope | R>
}

/**
 * The request-reply service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpRpc } from "@switchyard/amqp"
 * const reply = AmqpRpc.AmqpRpc.use((rpc) =>
 *   rpc.request("pricing", { payload: new TextEncoder().encode("sku-1"), timeout: "2 seconds" })
 * )
 * ```
 * @since 0.1.0
 */
export class AmqpRpc extends Context.Service<AmqpRpc, AmqpRpcShape>()("@switchyard/amqp/AmqpRpc") {}

const replyTo = "amq.rabbitmq.reply-to"

type Outcome = Reply | "no-responders"

const correlationOf = (message: ConsumeMessage): string => AmqpEnvelope.headerString(message.properties.correlationId) ?? ""

/** A reply through the one envelope mapping (its headers without the envelope's own). */
const replyOf = (message: ConsumeMessage, now: () => number): Reply => {
  const envelope = AmqpEnvelope.toEnvelope(message, replyTo, 1, now)
  return {
    payload: envelope.payload,
    headers: envelope.headers,
    contentType: envelope.contentType,
    correlationId: envelope.correlationId ?? ""
  }
}

/** The publish options of a request or a reply, through the one envelope mapping (not persistent). */
const rpcOptions = (
  payload: Uint8Array,
  fields: Partial<Omit<Envelope.OutgoingMessage, "payload">>,
  now: () => number,
  mandatory: boolean
) => ({
  ...AmqpEnvelope.toPublishOptions(Envelope.outgoing(payload, { timestamp: now(), ...fields }), { mandatory }),
  persistent: false
})

/** The reason of a failed handler, bounded: it travels in a header. */
const failureReason = (cause: Cause.Cause<unknown>): string => {
  const reason = Cause.pretty(cause).split("\n")[0] ?? "handler failed"
  return reason.length > 1000 ? `${reason.slice(0, 1000)}…` : reason
}

/** The requester's channel: direct reply-to consumed, returns (no queue bound) answered as no-responders. */
const setupRequester = (pending: Map<string, Deferred.Deferred<Outcome>>, now: () => number) => (watched: Channels.Watched<Channel>) => {
  const settle = (id: string, outcome: Outcome) => {
    const waiting = pending.get(id)
    if (waiting !== undefined) Deferred.doneUnsafe(waiting, Exit.succeed(outcome))
  }
  watched.channel.on("return", (message: ConsumeMessage) => settle(correlationOf(message), "no-responders"))
  return Provision.run(() =>
    watched.channel.consume(replyTo, (message) => {
      if (message !== null) settle(correlationOf(message), replyOf(message, now))
    }, { noAck: true })
  ).pipe(
    Effect.mapError((reason) => Provision.connectionError("rabbitmq", reason)),
    Effect.as(watched)
  )
}

const outcomeOf = (destination: string, outcome: Outcome): Effect.Effect<Reply, Errors.NoRespondersError | Errors.RemoteError> => {
  if (outcome === "no-responders") return Effect.fail(new Errors.NoRespondersError({ destination }))
  const remote = outcome.headers[errorHeader]
  return remote === undefined ? Effect.succeed(outcome) : Effect.fail(new Errors.RemoteError({ destination, reason: remote }))
}

const makeRequest = (
  connection: AmqpConnection.AmqpConnectionShape,
  requester: Effect.Effect<Channels.Watched<Channel>, Errors.ConnectionError>,
  pending: Map<string, Deferred.Deferred<Outcome>>,
  now: () => number
): AmqpRpcShape["request"] =>
(destination, request) => {
  const timeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(request.timeout ?? "5 seconds"))
  const publishError = (reason: Errors.Reason) => new Errors.PublishError({ destination, reason })
  const send = (watched: Channels.Watched<Channel>) =>
    Effect.suspend(() => {
      const correlationId = globalThis.crypto.randomUUID()
      const outcome = Deferred.makeUnsafe<Outcome>()
      pending.set(correlationId, outcome)
      return Effect.try({
        try: () =>
          watched.channel.publish(
            destination,
            request.key ?? "",
            AmqpEnvelope.toBuffer(request.payload),
            rpcOptions(request.payload, {
              id: correlationId,
              key: request.key,
              correlationId,
              headers: { ...request.headers, [AmqpEnvelope.AmqpHeaders.replyTo]: replyTo },
              ...(request.contentType !== undefined ? { contentType: request.contentType } : {})
            }, now, true)
          ),
        catch: (error) => AmqpErrors.reasonOf(error)
      }).pipe(
        Effect.mapError(publishError),
        Effect.andThen(Deferred.await(outcome)),
        Effect.flatMap((outcome) => outcomeOf(destination, outcome)),
        Effect.ensuring(Effect.sync(() => pending.delete(correlationId)))
      )
    })
  return connection.declare(AmqpTopology.destination(destination)).pipe(
    Effect.andThen(requester),
    Effect.mapError((e) => publishError(e.reason)),
    Effect.flatMap(send),
    Effect.timeoutOrElse({
      duration: Duration.millis(timeoutMillis),
      orElse: () => Effect.fail(new Errors.RequestTimeoutError({ destination, timeoutMillis }))
    })
  )
}

/** Replies to a request (to its direct reply-to queue) and acks it; a closed channel loses the reply. */
const respond = (channel: Channel, destination: string, now: () => number) =>
(message: ConsumeMessage, payload: Uint8Array, headers: Record<string, string>) =>
  Effect.try({
    try: () => {
      const to = AmqpEnvelope.headerString(message.properties.replyTo)
      if (to !== undefined && to !== "") {
        const options = rpcOptions(payload, { correlationId: correlationOf(message), headers }, now, false)
        channel.publish("", to, AmqpEnvelope.toBuffer(payload), options)
      }
      channel.ack(message)
    },
    catch: (error) => error
  }).pipe(
    // the channel closed under us: the request goes back to the queue with it (the requester may time out)
    Effect.catch((error) => Effect.logDebug(`rpc reply on ${destination} not sent: ${String(error)}`))
  )

/** A request and the responder channel that delivered it (its ack and reply go there). */
interface Incoming {
  readonly message: ConsumeMessage
  readonly channel: Channel
}

/**
 * Opens a responder channel: its auto-delete `<destination>.rpc` queue, bound with `#`, consumed into `inbox`.
 * The queue disappears with its last consumer, so it is declared on this channel every time, never through the
 * connection's declare cache: a cached declaration would outlive it (a later serve, or this one after a
 * reconnect, would skip it and fail to consume).
 */
const attachResponder = Effect.fn("AmqpRpc.attachResponder")(function*(
  connection: AmqpConnection.AmqpConnectionShape,
  destination: string,
  concurrency: number,
  inbox: DeliveryQueue.DeliveryQueue<Incoming>
) {
  const queue = `${destination}.rpc`
  const live = yield* Effect.mapError(connection.current, (e) => e.reason)
  const watched = yield* Effect.acquireRelease(
    Effect.map(Effect.mapError(connection.openChannel(live), (e) => e.reason), Channels.watch),
    (watched) => Channels.close(watched.channel)
  )
  const { channel } = watched
  yield* Provision.declareOn(channel, {
    queues: [{ name: queue, type: "classic", durable: false, autoDelete: true }],
    bindings: [{ source: destination, destination: queue, pattern: "#" }]
  }).pipe(
    Effect.andThen(Provision.run(() => channel.prefetch(concurrency))),
    Effect.andThen(Provision.run(() =>
      channel.consume(queue, (message) => {
        // cancelled by the server (the queue was deleted): drop the channel; the supervisor re-attaches
        if (message === null) Effect.runFork(Channels.close(channel))
        else if (!inbox.offer({ message, channel })) channel.nack(message, false, true)
      })
    ))
  )
  return watched
})

/**
 * The responder, supervised like a subscription: re-attached on the connection's reconnect schedule when its
 * channel closes (a dropped connection, a deleted queue); what the lost channel delivered and no handler took
 * is dropped (its ack could only go to that channel; the broker requeues it, unless the auto-delete queue
 * went with its last consumer, and then the requester times out).
 */
const superviseResponder = (
  connection: AmqpConnection.AmqpConnectionShape,
  destination: string,
  concurrency: number,
  inbox: DeliveryQueue.DeliveryQueue<Incoming>
) =>
  Supervisor.make({
    acquire: attachResponder(connection, destination, concurrency, inbox),
    lost: (watched: Channels.Watched<Channel>) =>
      Deferred.await(watched.closed).pipe(
        Effect.andThen(inbox.drain),
        Effect.andThen(Effect.logWarning(`rpc responder on ${destination} lost its channel; re-attaching`))
      ),
    schedule: connection.reconnectSchedule
  })

const makeServe = (connection: AmqpConnection.AmqpConnectionShape, now: () => number): AmqpRpcShape["serve"] =>
  Effect.fn("AmqpRpc.serve")(function*<E, R>(
    destination: string,
    handler: (request: Envelope.OutgoingMessage) => Effect.Effect<Uint8Array, E, R>,
    options?: { readonly concurrency?: number | undefined }
  ) {
    const subscribeError = (reason: Errors.Reason) => new Errors.SubscribeError({ destination, reason })
    const concurrency = Math.max(1, options?.concurrency ?? 16)
    // Only the durable exchange goes through the connection's declare cache (see attachResponder).
    yield* Effect.mapError(connection.declare(AmqpTopology.destination(destination)), (e) => subscribeError(e.reason))
    const inbox = yield* DeliveryQueue.make<Incoming>({ capacity: concurrency })
    yield* Effect.addFinalizer(() => Effect.sync(inbox.end))
    const supervised = yield* Effect.mapError(superviseResponder(connection, destination, concurrency, inbox), subscribeError)
    // the reconnect schedule gave up: the responder stops (requests get NoResponders), and says why
    yield* Deferred.await(supervised.failure).pipe(
      Effect.catch((reason) => Effect.logError(`rpc responder on ${destination} stopped: it could not re-attach`, reason)),
      Effect.andThen(Effect.sync(inbox.end)),
      Effect.forkScoped
    )
    const answer = ({ channel, message }: Incoming) => {
      const reply = respond(channel, destination, now)
      return Effect.suspend(() => handler(AmqpEnvelope.toEnvelope(message, destination, 1, now))).pipe(
        Effect.flatMap((payload) => reply(message, payload, {})),
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.interrupt
            : Effect.logWarning(`rpc handler on ${destination} failed; answering with the reason`, cause).pipe(
              Effect.andThen(reply(message, new Uint8Array(0), { [errorHeader]: failureReason(cause) }))
            )
        )
      )
    }
    yield* inbox.stream.pipe(
      Stream.mapEffect(answer, { concurrency, unordered: true }),
      Stream.runDrain,
      Effect.forkScoped
    )
  })

/**
 * Builds the service on an `AmqpConnection`, in the current scope (the requester's channel opens on the first
 * request and re-opens after a reconnect).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { AmqpConnection, AmqpRpc } from "@switchyard/amqp"
 * const RpcLive = AmqpRpc.layer.pipe(Layer.provide(AmqpConnection.layer({ url: "amqp://127.0.0.1" })))
 * ```
 * @since 0.1.0
 */
export const make: Effect.Effect<AmqpRpcShape, never, AmqpConnection.AmqpConnection | Scope.Scope> = Effect.gen(function*() {
  const connection = yield* AmqpConnection.AmqpConnection
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const pending = new Map<string, Deferred.Deferred<Outcome>>()
  const requester = yield* Channels.lazy(Channels.supervise(connection, connection.openChannel, setupRequester(pending, now)))
  return AmqpRpc.of({
    request: makeRequest(connection, Effect.flatMap(requester, (current) => current), pending, now),
    serve: makeServe(connection, now)
  })
})

/**
 * The request-reply service as a Layer on `AmqpConnection`.
 *
 * @example
 * ```ts
 * import { AmqpRpc } from "@switchyard/amqp"
 * const layer = AmqpRpc.layer // Layer<AmqpRpc, never, AmqpConnection>
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<AmqpRpc, never, AmqpConnection.AmqpConnection> = Layer.effect(AmqpRpc, make)
