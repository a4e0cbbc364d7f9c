/**
 * JetStream's operator read of a parking destination (`Broker.browse`), and the consumer lag of a group.
 *
 * A browse reads the stream that holds the destination with an ordered (ephemeral, unacknowledged) consumer
 * filtered on the destination: no durable group, so it takes nothing from any group's competition. It ends
 * after the last message the stream held at open. `ack` deletes the message from the stream by sequence;
 * `nack`, or leaving it unsettled, leaves it stored.
 *
 * @internal
 */
import {
  DeliverPolicy,
  type JetStreamClient,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg
} from "@nats-io/jetstream"
import type { Broker, Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { Cause, Duration, Effect, Option, Scope, Stream } from "effect"
import { fromMessage, reason, sanitizeName } from "./envelope.ts"
import { kindOf } from "./errors.ts"

/** A browsed message's coordinates: those of every JetStream delivery (`JetStream.Coordinates`). */
interface Coordinates extends Envelope.Coordinates {
  readonly sequence: number
  readonly stream: string
  readonly consumerSequence: number
  readonly subject: string
}

/** What a browse and a lag query need from the JetStream broker. */
export interface BrowseContext {
  readonly client: JetStreamClient
  readonly manager: JetStreamManager
  /** The stream holding a destination, without provisioning one (`None` when no stream holds it). */
  readonly findStream: (destination: string) => Effect.Effect<Option.Option<string>, Errors.SubscribeError>
  readonly now: () => number
}

const isApiError = (cause: unknown, code: number): boolean => cause instanceof JetStreamApiError && cause.code === code

const nanosToMillis = (nanos: number): number => Math.floor(nanos / 1_000_000)

const subscribeError = (destination: string, what: string) => (cause: unknown) =>
  new Errors.SubscribeError({ destination, reason: `${what}: ${reason(cause)}`, kind: kindOf(cause), cause })

/**
 * One browsed message. Only the first settlement counts; a failed `ack` (the delete did not happen) can be
 * tried again.
 */
class BrowseDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  #settled = false
  constructor(
    readonly message: JsMsg,
    readonly destination: string,
    readonly manager: JetStreamManager,
    readonly now: () => number
  ) {}
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      const m = this.message
      const info = m.info
      const coordinates: Coordinates = {
        destination: this.destination,
        sequence: info.streamSequence,
        stream: info.stream,
        consumerSequence: info.deliverySequence,
        subject: m.subject
      }
      const origin = { stream: info.stream, brokerTimestamp: nanosToMillis(info.timestampNanos) }
      this.#envelope = fromMessage(m, 1, coordinates, origin, this.now)
    }
    return this.#envelope
  }
  /** Deletes the message from its stream (resolves once the server removed it; already gone counts as removed). */
  get ack(): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => {
      if (this.#settled) return Effect.void
      this.#settled = true
      const { stream, streamSequence } = this.message.info
      return Effect.tryPromise({
        try: () =>
          this.manager.streams.deleteMessage(stream, streamSequence, false).catch((cause: unknown) => {
            if (isApiError(cause, JetStreamApiCodes.NoMessageFound)) return true
            throw cause
          }),
        catch: (cause) =>
          new Errors.AckError({
            destination: this.destination,
            reason: `deleting ${stream}/${streamSequence}: ${reason(cause)}`,
            kind: kindOf(cause),
            cause
          })
      }).pipe(
        Effect.tapError(() => Effect.sync(() => {
          this.#settled = false
        })),
        Effect.asVoid
      )
    })
  }
  /** Leaves the message in its stream. */
  get nack(): (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError> {
    return () =>
      Effect.sync(() => {
        this.#settled = true
      })
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

/**
 * Opens the ordered consumer of a read in the current scope (closed with it) and returns the effect that
 * reads its next message, failing with `Cause.Done` when there is none left: the iterator ended, or the
 * read waited `idleCheck` and the server says the consumer has nothing pending (the rest of what was
 * retained at open was deleted meanwhile, e.g. by the stream's `max_age`), so a read never hangs. A
 * pending read of the iterator is never abandoned while the server may still send something.
 */
const openReader = (ctx: BrowseContext, stream: string, destination: string, prefetch: number) =>
  Effect.gen(function*() {
    const fail = subscribeError(destination, "browse")
    const { consumer, iterator } = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const consumer = await ctx.client.consumers.get(stream, {
            filter_subjects: destination,
            deliver_policy: DeliverPolicy.All
          })
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
      const received = Effect.tryPromise({ try: () => next, catch: fail }).pipe(
        Effect.flatMap((r) => r.done === true ? Cause.done() : Effect.succeed(r.value))
      )
      return Effect.raceFirst(received, drained)
    })
  })

/**
 * Opens a browse of `destination` in the current scope (see `Broker.browse`): counts what the stream retains
 * of it now; the ordered consumer is opened when `deliveries` is run, and closed when it ends. `prefetch`
 * bounds how many messages are read ahead of the stream's consumer; unsettled ones hold nothing at the
 * server (the read is unacknowledged), so a browse never stalls on them.
 */
export const browse = (
  ctx: BrowseContext,
  destination: string,
  options: Broker.BrowseOptions
): Effect.Effect<Broker.Browse, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const found = yield* ctx.findStream(destination)
    if (Option.isNone(found)) return { retained: 0, deliveries: Stream.empty }
    const stream = found.value
    const { lastSequence, retained } = yield* openState(ctx, stream, destination)
    if (retained === 0) return { retained, deliveries: Stream.empty }
    const deliveries: Stream.Stream<Broker.RawDelivery, Errors.SubscribeError> = Stream.unwrap(
      Effect.map(
        openReader(ctx, stream, destination, options.prefetch),
        (read) => Stream.fromEffectRepeat(read)
      )
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
 * The messages of `destination` a group has not consumed yet: its durable consumer's `num_pending` (stored,
 * matching its filter, not yet delivered) plus `num_ack_pending` (delivered, not yet acknowledged). Fails
 * with kind `NotFound` when no stream holds the destination or the group has no durable consumer there.
 */
export const lag = (
  ctx: BrowseContext,
  destination: string,
  group: string
): Effect.Effect<number, Errors.SubscribeError> =>
  Effect.gen(function*() {
    const found = yield* ctx.findStream(destination)
    if (Option.isNone(found)) {
      return yield* new Errors.SubscribeError({ destination, reason: "no stream holds it", kind: "NotFound" })
    }
    const durable = sanitizeName(`${group}__${destination}`)
    const info = yield* Effect.tryPromise({
      try: () => ctx.manager.consumers.info(found.value, durable),
      catch: (cause) =>
        isApiError(cause, JetStreamApiCodes.ConsumerNotFound)
          ? new Errors.SubscribeError({
            destination,
            reason: `group ${group} has no consumer on stream ${found.value} (it never subscribed)`,
            kind: "NotFound",
            cause
          })
          : subscribeError(destination, `consumer ${durable}`)(cause)
    })
    return info.num_pending + info.num_ack_pending
  })
