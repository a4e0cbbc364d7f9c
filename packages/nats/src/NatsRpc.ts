/**
 * Request-reply over core NATS with Schema-typed requests and responses: `request` (timeout and
 * no-responders as typed errors) and `serve` (a responder whose handler is a Schema-decoded effect).
 *
 * @since 0.1.0
 */
import { headers as makeHeaders, type Msg, type MsgHdrs, NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node"
import { Codec, Errors } from "@switchyard/core"
import type { Scope } from "effect"
import { Cause, Duration, Effect, FiberSet, Predicate, Result, Schema, Semaphore } from "effect"
import { BrokerErrors } from "@switchyard/core/adapter"
import { encodeValue, lastHeader } from "./internal/envelope.ts"
import { reasonOf, subscribeError } from "./internal/errors.ts"
import { NatsConnection } from "./NatsConnection.ts"

/** Header carrying a responder-side failure. @since 0.1.0 */
export const errorHeader = "x-switchyard-rpc-error"

/**
 * The responder failed (its handler failed or died, or it could not decode the request): core's shared
 * `Errors.RemoteError`, the same contract as AMQP's request-reply. The requester gets it at once.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsRpc } from "@switchyard/nats"
 * declare const call: Effect.Effect<number, NatsRpc.RemoteError>
 * call.pipe(Effect.catchTag("RemoteError", (e) => Effect.logError(e.reason)))
 * ```
 * @since 0.1.0
 */
export const RemoteError = Errors.RemoteError

/**
 * See {@link RemoteError}.
 *
 * @since 0.1.0
 */
export type RemoteError = Errors.RemoteError

/**
 * A typed request-reply endpoint: a subject with the request and response schemas (JSON on the wire).
 *
 * @since 0.1.0
 */
export interface Endpoint<Req, Res> {
  readonly subject: string
  readonly request: Codec.Codec<Req>
  readonly response: Codec.Codec<Res>
}

/**
 * Declares an endpoint shared by requesters and responders.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { NatsRpc } from "@switchyard/nats"
 * const quote = NatsRpc.endpoint(
 *   "pricing.quote",
 *   Schema.Struct({ sku: Schema.String }),
 *   Schema.Struct({ price: Schema.Number })
 * )
 * ```
 * @since 0.1.0
 */
export const endpoint = <
  Req extends Schema.Codec<unknown, unknown, never, never>,
  Res extends Schema.Codec<unknown, unknown, never, never>
>(subject: string, request: Req, response: Res): Endpoint<Req["Type"], Res["Type"]> => ({
  subject,
  request: Codec.json(request),
  response: Codec.json(response)
})

/**
 * Errors of {@link request}.
 *
 * @since 0.1.0
 */
export type RequestFailure =
  | Errors.RequestTimeoutError
  | Errors.NoRespondersError
  | Errors.EncodeError
  | Errors.DecodeError
  | Errors.PublishError
  | RemoteError

/**
 * Sends a request and waits for the typed reply.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { NatsRpc } from "@switchyard/nats"
 * const quote = NatsRpc.endpoint("pricing.quote", Schema.Struct({ sku: Schema.String }), Schema.Number)
 * const price = NatsRpc.request(quote, { sku: "A-1" }, { timeout: "2 seconds" })
 * ```
 * @since 0.1.0
 */
export const request = <Req, Res>(
  endpoint: Endpoint<Req, Res>,
  value: Req,
  options?: { readonly timeout?: Duration.Input | undefined }
): Effect.Effect<Res, RequestFailure, NatsConnection> =>
  NatsConnection.use(({ nc }) => {
    // Written without a generator: this is the per-request hot path.
    const destination = endpoint.subject
    const payload = endpoint.request.encode(value)
    if (Result.isFailure(payload)) return Effect.fail(new Errors.EncodeError({ destination, message: payload.failure }))
    const timeoutMillis = Duration.toMillis(options?.timeout ?? "5 seconds")
    return Effect.tryPromise({
      try: () =>
        nc.request(destination, payload.success, {
          timeout: timeoutMillis,
          headers: contentTypeHeader(endpoint.request.contentType)
        }),
      catch: (cause): RequestFailure =>
        cause instanceof TimeoutError
          ? new Errors.RequestTimeoutError({ destination, timeoutMillis })
          : cause instanceof NoRespondersError ||
              (cause instanceof RequestError && cause.isNoResponders())
          ? new Errors.NoRespondersError({ destination })
          : new Errors.PublishError({ destination, reason: reasonOf(cause), cause })
    }).pipe(Effect.flatMap((reply): Effect.Effect<Res, RequestFailure> => {
      const remote = lastHeader(reply, errorHeader)
      if (remote !== undefined) return Effect.fail(new RemoteError({ destination, reason: remote }))
      const decoded = endpoint.response.decode(reply.data)
      return Result.isFailure(decoded)
        ? Effect.fail(new Errors.DecodeError({ destination, message: decoded.failure.message }))
        : Effect.succeed(decoded.success)
    }))
  })

/**
 * `content-type` headers, built once per content type and shared: nats.js only reads the headers of
 * what it publishes (it encodes them per message).
 */
const contentTypeHeaders = new Map<string, MsgHdrs>()
const contentTypeHeader = (contentType: string): MsgHdrs => {
  let h = contentTypeHeaders.get(contentType)
  if (h === undefined) {
    h = makeHeaders()
    h.set("content-type", contentType)
    contentTypeHeaders.set(contentType, h)
  }
  return h
}

/**
 * Options of {@link serve}.
 *
 * @since 0.1.0
 */
export interface ServeOptions {
  /** Queue group: responders in one group share the requests (default: the subject). */
  readonly queue?: string | undefined
  /** Requests handled at once (default 64). */
  readonly concurrency?: number | undefined
  /** On shutdown, how long requests in flight may take to be answered (default 10 seconds). */
  readonly drainTimeout?: Duration.Input | undefined
}

/**
 * Answers requests on an endpoint until the scope closes. Then it drains: no new requests are taken, and
 * those in flight are answered (within `drainTimeout`) before their handlers are interrupted.
 * Requests that fail to decode, and handler failures, are answered with a {@link RemoteError}.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { NatsRpc } from "@switchyard/nats"
 * const quote = NatsRpc.endpoint("pricing.quote", Schema.Struct({ sku: Schema.String }), Schema.Number)
 * const responder = NatsRpc.serve(quote, ({ sku }) => Effect.succeed(sku.length * 10))
 * ```
 * @since 0.1.0
 */
export const serve = Effect.fn("NatsRpc.serve")(function*<Req, Res, E, R>(
  endpoint: Endpoint<Req, Res>,
  handler: (request: Req, message: Msg) => Effect.Effect<Res, E, R>,
  options?: ServeOptions
): Effect.fn.Return<void, Errors.SubscribeError, NatsConnection | Scope.Scope | R> {
  const { nc } = yield* NatsConnection
  const destination = endpoint.subject
  const handle = answer(endpoint, handler)
  const permits = yield* Semaphore.make(Math.max(1, options?.concurrency ?? 64))
  // Each request starts its handler right in nats.js's callback (a fiber of this scope's set, bounded by
  // the permits): no hand-over through a stream and no event-loop hop before the handler runs.
  const handlers = yield* FiberSet.make<void, never>()
  const run = yield* FiberSet.runtime(handlers)<R>()
  // Shutdown, in this order (finalizers run last-registered first): drain the subscription (no new
  // requests), let the handlers in flight answer within the drain timeout, then interrupt what is left.
  yield* Effect.addFinalizer(() =>
    FiberSet.awaitEmpty(handlers).pipe(Effect.timeout(options?.drainTimeout ?? "10 seconds"), Effect.ignore)
  )
  yield* listen(nc, destination, options?.queue ?? destination, (err, msg) => {
    if (err === null) run(Semaphore.withPermits(permits, 1)(handle(msg)))
    else run(Effect.logWarning("nats responder subscription error", { destination, error: BrokerErrors.messageOf(err) }))
  })
})

/** Answers with no payload and the failure in {@link errorHeader}: the requester fails with `RemoteError`. */
const respondError = (msg: Msg, why: string): Effect.Effect<void> =>
  Effect.sync(() => {
    const h = makeHeaders()
    h.set(errorHeader, encodeValue(why))
    msg.respond(new Uint8Array(0), { headers: h })
  })

/** Decodes a request, runs the handler, answers with the encoded response or the failure. */
const answer = <Req, Res, E, R>(
  endpoint: Endpoint<Req, Res>,
  handler: (request: Req, message: Msg) => Effect.Effect<Res, E, R>
) =>
(msg: Msg): Effect.Effect<void, never, R> => {
  const decoded = endpoint.request.decode(msg.data)
  if (Result.isFailure(decoded)) return respondError(msg, `DecodeError: ${decoded.failure.message}`)
  return handler(decoded.success, msg).pipe(
    Effect.flatMap((res) => {
      const encoded = endpoint.response.encode(res)
      return Result.isFailure(encoded)
        ? respondError(msg, `EncodeError: ${encoded.failure}`)
        : Effect.sync(() => {
          msg.respond(encoded.success, { headers: contentTypeHeader(endpoint.response.contentType) })
        })
    }),
    Effect.catchCause((cause) => respondError(msg, causeMessage(cause)))
  )
}

/** The responders' queue-group subscription, registered at the server, drained when the scope closes. */
const listen = (
  nc: NatsConnection["Service"]["nc"],
  destination: string,
  queue: string,
  callback: (err: Error | null, msg: Msg) => void
) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => {
        const sub = nc.subscribe(destination, { queue, callback })
        return nc.flush().then(() => sub)
      },
      catch: subscribeError(destination)
    }),
    (sub) => Effect.promise(() => sub.drain().catch(() => undefined))
  )

const causeMessage = (cause: Cause.Cause<unknown>): string => {
  if (Cause.hasInterruptsOnly(cause)) return "interrupted"
  const error = Cause.squash(cause)
  if (Predicate.hasProperty(error, "_tag")) {
    return `${String(error._tag)}: ${Predicate.hasProperty(error, "message") ? String(error.message) : ""}`
  }
  return Predicate.isError(error) ? `${error.name}: ${error.message}` : String(error)
}
