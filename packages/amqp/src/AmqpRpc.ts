/**
 * Request-reply over RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no reply queue is declared, replies
 * are matched to requests by correlation id, and a request without an answer in time fails with
 * `RequestTimeoutError` (or `NoRespondersError` when nothing is bound to the destination). When the
 * responder's handler fails or dies, the requester gets a `RemoteError` with the reason at once (the reply
 * carries it in the `x-switchyard-rpc-error` header, the same contract as `NatsRpc`).
 *
 * @since 0.1.0
 */
import type { Channel, ConsumeMessage } from "amqplib"
import type { Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import type { Scope } from "effect"
import { Cause, Clock, Context, Duration, Effect, Layer, Queue, Semaphore, Stream } from "effect"
import * as AmqpConnection from "./AmqpConnection.ts"
import * as AmqpEnvelope from "./internal/envelope.ts"
import * as AmqpErrors from "./internal/errors.ts"
import * as Topology from "./Topology.ts"

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
   * reason (the requester gets a `RemoteError`) and acknowledged: it is not redelivered.
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

interface Requester {
  readonly channel: Channel
  closed: boolean
}

const toBuffer = AmqpEnvelope.toBuffer

const stringHeaders = (raw: Record<string, unknown> | undefined): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const name in raw ?? {}) {
    const value = AmqpEnvelope.headerString(raw?.[name])
    if (value !== undefined) headers[name] = value
  }
  return headers
}

/** The reason of a failed handler, bounded: it travels in a header. */
const failureReason = (cause: Cause.Cause<unknown>): string => {
  const reason = Cause.pretty(cause).split("\n")[0] ?? "handler failed"
  return reason.length > 1000 ? `${reason.slice(0, 1000)}…` : reason
}

/**
 * Builds the service on an `AmqpConnection`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { AmqpConnection, AmqpRpc } from "@switchyard/amqp"
 * const RpcLive = AmqpRpc.layer.pipe(Layer.provide(AmqpConnection.layer({ url: "amqp://127.0.0.1" })))
 * ```
 * @since 0.1.0
 */
export const make = Effect.gen(function*() {
  const connection = yield* AmqpConnection.AmqpConnection
  const clock = yield* Clock.Clock
  const pending = new Map<string, (outcome: Reply | "no-responders") => void>()
  let requester: Requester | undefined
  const lock = Semaphore.makeUnsafe(1)

  const openRequester = Effect.suspend(() => {
    if (requester !== undefined && !requester.closed) return Effect.succeed(requester)
    return lock.withPermit(Effect.suspend(() => {
      if (requester !== undefined && !requester.closed) return Effect.succeed(requester)
      return connection.current.pipe(
        Effect.flatMap(connection.openChannel),
        Effect.flatMap((channel) =>
          Effect.tryPromise({
            try: async () => {
              const r: Requester = { channel, closed: false }
              channel.on("close", () => {
                r.closed = true
              })
              channel.on("return", (msg: ConsumeMessage) => {
                const id = typeof msg.properties.correlationId === "string" ? msg.properties.correlationId : ""
                pending.get(id)?.("no-responders")
              })
              await channel.consume(replyTo, (msg) => {
                if (msg === null) return
                const id = typeof msg.properties.correlationId === "string" ? msg.properties.correlationId : ""
                pending.get(id)?.({
                  payload: new Uint8Array(msg.content.buffer, msg.content.byteOffset, msg.content.byteLength),
                  headers: stringHeaders(msg.properties.headers),
                  contentType: typeof msg.properties.contentType === "string"
                    ? msg.properties.contentType
                    : "application/octet-stream",
                  correlationId: id
                })
              }, { noAck: true })
              requester = r
              return r
            },
            catch: (e) =>
              new Errors.ConnectionError({
                broker: connection.label,
                reason: AmqpConnection.errorMessage(e),
                kind: AmqpErrors.classify(e)
              })
          })
        )
      )
    }))
  })

  const request: AmqpRpcShape["request"] = (destination, req) => {
    const timeoutMillis = Duration.toMillis(Duration.fromInputUnsafe(req.timeout ?? "5 seconds"))
    const correlationId = globalThis.crypto.randomUUID()
    const publishError = (reason: string, kind: Errors.ErrorKind) => new Errors.PublishError({ destination, reason, kind })
    return connection.declare(Topology.destination(destination)).pipe(
      Effect.andThen(openRequester),
      Effect.mapError((e) => publishError(e.reason, e.kind ?? "Unknown")),
      Effect.flatMap((r) =>
        Effect.callback<Reply, Errors.NoRespondersError | Errors.RemoteError | Errors.PublishError>((resume) => {
          pending.set(correlationId, (outcome) => {
            pending.delete(correlationId)
            if (outcome === "no-responders") return resume(Effect.fail(new Errors.NoRespondersError({ destination })))
            const remote = outcome.headers[errorHeader]
            resume(remote === undefined
              ? Effect.succeed(outcome)
              : Effect.fail(new Errors.RemoteError({ destination, reason: remote })))
          })
          try {
            r.channel.publish(destination, req.key ?? "", toBuffer(req.payload), {
              correlationId,
              replyTo,
              mandatory: true,
              contentType: req.contentType ?? "application/octet-stream",
              headers: { ...req.headers }
            })
          } catch (e) {
            pending.delete(correlationId)
            resume(Effect.fail(publishError(AmqpConnection.errorMessage(e), AmqpErrors.classify(e))))
          }
          return Effect.sync(() => pending.delete(correlationId))
        })
      ),
      Effect.timeoutOrElse({
        duration: Duration.millis(timeoutMillis),
        orElse: () => Effect.fail(new Errors.RequestTimeoutError({ destination, timeoutMillis }))
      })
    )
  }

  const serve: AmqpRpcShape["serve"] = (destination, handler, options) =>
    Effect.gen(function*() {
      const queue = `${destination}.rpc`
      const subscribeError = (reason: string, kind?: Errors.ErrorKind) =>
        new Errors.SubscribeError({ destination, reason, ...(kind === undefined ? {} : { kind }) })
      // Only the durable exchange goes through the connection's declare cache (re-declared on reconnect). The
      // auto-delete rpc queue disappears with its last consumer, so it is declared on this serve's own channel
      // every time: a cached declaration would outlive it (a later serve would skip it and fail to consume).
      yield* connection.declare(Topology.destination(destination)).pipe(
        Effect.mapError((e) => subscribeError(e.reason))
      )
      const live = yield* connection.current.pipe(Effect.mapError((e) => subscribeError(e.reason)))
      const channel = yield* Effect.acquireRelease(
        connection.openChannel(live).pipe(Effect.mapError((e) => subscribeError(e.reason))),
        (channel) => Effect.promise(() => channel.close().catch(() => {}))
      )
      const concurrency = options?.concurrency ?? 16
      const inbox = yield* Queue.unbounded<ConsumeMessage, Cause.Done>()
      yield* Effect.tryPromise({
        try: async () => {
          await Topology.declareOn(channel, {
            queues: [{ name: queue, type: "classic", durable: false, autoDelete: true }],
            bindings: [{ source: destination, destination: queue, pattern: "#" }]
          })
          await channel.prefetch(concurrency)
          await channel.consume(queue, (msg) => {
            if (msg === null) Queue.endUnsafe(inbox)
            else Queue.offerUnsafe(inbox, msg)
          })
        },
        catch: (e) => subscribeError(AmqpConnection.errorMessage(e), AmqpErrors.classify(e))
      })
      const now = () => clock.currentTimeMillisUnsafe()
      // Replies go to the requester's direct reply-to queue; a closed channel loses them (the requester times out).
      const reply = (msg: ConsumeMessage, payload: Uint8Array, headers: Record<string, string>) =>
        Effect.sync(() => {
          const to = msg.properties.replyTo
          if (typeof to === "string" && to !== "") {
            channel.publish("", to, toBuffer(payload), {
              correlationId: AmqpEnvelope.headerString(msg.properties.correlationId) ?? "",
              contentType: "application/octet-stream",
              headers
            })
          }
          channel.ack(msg)
        })
      const answer = (msg: ConsumeMessage) => {
        const incoming: Envelope.OutgoingMessage = AmqpEnvelope.toEnvelope(msg, destination, 1, now)
        return Effect.suspend(() => handler(incoming)).pipe(
          Effect.flatMap((payload) => reply(msg, payload, {})),
          Effect.catchCause((cause) =>
            Cause.hasInterruptsOnly(cause)
              ? Effect.interrupt
              : Effect.logWarning(`rpc handler on ${destination} failed; answering with the reason`, cause).pipe(
                Effect.andThen(reply(msg, new Uint8Array(0), { [errorHeader]: failureReason(cause) }))
              )
          ),
          // the channel closed under us: the request goes back to the queue with it
          Effect.catchDefect(() => Effect.void)
        )
      }
      yield* Stream.fromQueue(inbox).pipe(
        Stream.mapEffect(answer, { concurrency, unordered: true }),
        Stream.runDrain,
        Effect.forkScoped
      )
    })

  return AmqpRpc.of({ request, serve })
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
