/**
 * JetStream's operator read of a parking destination (`Broker.browse`), and the consumer lag of a group.
 *
 * A browse reads the stream that holds the destination with an ordered (ephemeral, unacknowledged) consumer
 * filtered on the destination: no durable group, so it takes nothing from any group's competition. It ends
 * after the last message the stream held at open. `ack` deletes the message from the stream by sequence
 * (through `Settlement.make`: once; a failed delete leaves the message stored); `nack`, or leaving it
 * unsettled, leaves it stored.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream"
import { type Broker, type Envelope, Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import { Cause, Duration, Effect, Option, type Scope, Stream } from "effect"
import { envelopeOf } from "./delivery.ts"
import { apiCodes, isApiError, reasonIn, subscribeError } from "./errors.ts"
import { durableName } from "./provision.ts"

/** What a browse and a lag query need from the JetStream broker. */
export interface BrowseContext {
  readonly client: JetStreamClient
  readonly manager: JetStreamManager
  /** The stream holding a destination, without provisioning one (`None` when no stream holds it). */
  readonly findStream: (destination: string) => Effect.Effect<Option.Option<string>, Errors.SubscribeError>
  readonly now: () => number
}

/** Deletes a message from its stream; already gone counts as deleted. */
const deleteMessage = (manager: JetStreamManager, destination: string, m: JsMsg) => {
  const { stream, streamSequence } = m.info
  return Effect.tryPromise({
    try: () => manager.streams.deleteMessage(stream, streamSequence, false),
    catch: (cause) => cause
  }).pipe(
    Effect.catchIf((cause) => isApiError(cause, apiCodes.noMessageFound), () => Effect.succeed(true)),
    Effect.asVoid,
    Effect.mapError((cause) =>
      new Errors.AckError({ destination, reason: reasonIn(`deleting ${stream}/${streamSequence}`, cause), cause })
    )
  )
}

/** One browsed message. */
class BrowseDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  readonly ack: Effect.Effect<void, Errors.AckError>
  readonly nack: (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError>
  constructor(readonly message: JsMsg, readonly destination: string, manager: JetStreamManager, readonly now: () => number) {
    const settle = Settlement.make(destination, {
      ack: deleteMessage(manager, destination, message),
      nack: () => Effect.void
    })
    this.ack = settle.ack
    this.nack = settle.nack
  }
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) this.#envelope = envelopeOf(this.destination, this.message, 1, this.now)
    return this.#envelope
  }
}

/** The stream state a browse starts from: the messages of the destination, and the stream's last sequence. */
const openState = (ctx: BrowseContext, stream: string, destination: string) =>
  Effect.tryPromise({
    try: () => ctx.manager.streams.info(stream, { subjects_filter: destination }),
    catch: subscribeError(destination, `stream ${stream}`)
  }).pipe(Effect.map((info) => ({
    retained: Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0),
    lastSequence: info.state.last_seq
  })))

/** How long a read waits for the next message before asking the server whether any is left. */
const idleCheck = Duration.seconds(2)

const openConsumer = (ctx: BrowseContext, stream: string, destination: string, prefetch: number) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const consumer = await ctx.client.consumers.get(stream, { filter_subjects: destination, deliver_policy: DeliverPolicy.All })
        const messages = await consumer.consume({ max_messages: Math.max(1, prefetch) })
        return { consumer, messages, iterator: messages[Symbol.asyncIterator]() }
      },
      catch: subscribeError(destination, "ordered consumer")
    }),
    // nats.js's `close()` resolves once its iterator has finished: stop the pull, then finish the iterator.
    ({ iterator, messages }) =>
      Effect.promise(async () => {
        const closed = messages.close().catch(() => undefined)
        await iterator.return?.().catch(() => undefined)
        await closed
      }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
  )

/**
 * Opens the ordered consumer of a read in the current scope and returns the effect that reads its next
 * message, failing with `Cause.Done` when there is none left: the iterator ended, or the read waited
 * `idleCheck` and the server says the consumer has nothing pending (the rest of what was retained at open was
 * deleted meanwhile, e.g. by the stream's `max_age`), so a read never hangs.
 */
const openReader = Effect.fn("NatsBroker.browseReader")(function*(
  ctx: BrowseContext,
  stream: string,
  destination: string,
  prefetch: number
) {
  const { consumer, iterator } = yield* openConsumer(ctx, stream, destination, prefetch)
  // An error asking counts as "not known to be caught up": the iterator fails or ends by itself then.
  const caughtUp = Effect.tryPromise(() => consumer.info(false)).pipe(
    Effect.map((info) => info.num_pending === 0),
    Effect.catch(() => Effect.succeed(false))
  )
  const drained = Effect.sleep(idleCheck).pipe(
    Effect.andThen(caughtUp),
    Effect.repeat({ until: (done) => done }),
    Effect.andThen(Cause.done())
  )
  return Effect.suspend(() => {
    const next = iterator.next()
    const received = Effect.tryPromise({ try: () => next, catch: subscribeError(destination, "browse") }).pipe(
      Effect.flatMap((r) => r.done === true ? Cause.done() : Effect.succeed(r.value))
    )
    return Effect.raceFirst(received, drained)
  })
})

/** Opens a browse of `destination` in the current scope (see `Broker.browse`). */
export const browse = Effect.fn("NatsBroker.browse")(function*(
  ctx: BrowseContext,
  destination: string,
  options: Broker.BrowseOptions
): Effect.fn.Return<Broker.Browse, Errors.SubscribeError, Scope.Scope> {
  const found = yield* ctx.findStream(destination)
  if (Option.isNone(found)) return { retained: 0, deliveries: Stream.empty }
  const stream = found.value
  const { lastSequence, retained } = yield* openState(ctx, stream, destination)
  if (retained === 0) return { retained, deliveries: Stream.empty }
  const deliveries: Stream.Stream<Broker.RawDelivery, Errors.SubscribeError> = Stream.unwrap(
    Effect.map(openReader(ctx, stream, destination, options.prefetch), (read) => Stream.fromEffectRepeat(read))
  ).pipe(
    // The last message retained at open: the stream's last sequence, or nothing of the destination after it.
    Stream.takeUntil((m) => m.seq >= lastSequence || m.info.pending === 0),
    // Stored after the browse opened (the stream's last sequence then was a message of another subject).
    Stream.filter((m) => m.seq <= lastSequence),
    Stream.map((m) => new BrowseDelivery(m, destination, ctx.manager, ctx.now))
  )
  return { retained, deliveries }
})

/**
 * The messages of `destination` a group has not consumed yet: its durable consumer's `num_pending` plus
 * `num_ack_pending`. Fails with `NotFound` when no stream holds the destination or the group has no durable
 * consumer there.
 */
export const lag = Effect.fn("NatsBroker.lag")(function*(ctx: BrowseContext, destination: string, group: string) {
  const found = yield* ctx.findStream(destination)
  if (Option.isNone(found)) {
    return yield* new Errors.SubscribeError({ destination, reason: Errors.reason("NotFound", "no stream holds it") })
  }
  const durable = durableName(group, destination)
  const info = yield* Effect.tryPromise({
    try: () => ctx.manager.consumers.info(found.value, durable),
    catch: (cause) =>
      isApiError(cause, apiCodes.consumerNotFound)
        ? new Errors.SubscribeError({
          destination,
          reason: Errors.reason(
            "NotFound",
            `group ${group} has no consumer on stream ${found.value} (it never subscribed)`,
            apiCodes.consumerNotFound
          ),
          cause
        })
        : subscribeError(destination, `consumer ${durable}`)(cause)
  })
  return info.num_pending + info.num_ack_pending
})

