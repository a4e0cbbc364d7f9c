/**
 * An operator's read of a RabbitMQ parking queue (`Broker.browse`): the queue named after the dead-letter
 * destination itself, not a group queue bound to it.
 *
 * - `retained` is the queue's ready-message count at open (`queue.declare` passive, i.e. `checkQueue`);
 * - a dedicated channel consumes the queue with `basic.qos(prefetch)`; the first `retained` deliveries are the
 *   messages retained at open (the queue is FIFO and appends what arrives later), so the stream ends after
 *   them. Deliveries past that count are requeued at once. A consumer, not `basic.get`, because `basic.get`
 *   is one round trip per message while a consumer streams up to `prefetch` at a time;
 * - if the queue runs dry before (another reader took messages), a passive declare on the same channel finds it
 *   empty while nothing arrived since, and the stream ends too (the channel's frames are ordered: a delivery
 *   sent before the declare's reply is seen before it);
 * - `ack` is `basic.ack` (removed for good); `nack` holds the message unacknowledged until the read's scope
 *   closes, and closing the channel requeues it (and every unsettled delivery). Requeueing at once would hand
 *   it straight back to this consumer. Held messages keep their consumer's prefetch slots, so once half of a
 *   consumer's slots are held a fresh consumer takes over on the same channel (unacked messages belong to the
 *   channel) and the old one is cancelled.
 *
 * @internal
 */
import type { Channel, ConsumeMessage } from "amqplib"
import type { Broker, Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import type { Scope } from "effect"
import { Cause, Deferred, Effect, Exit, Queue, Semaphore, Stream } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"
import * as AmqpEnvelope from "./envelope.ts"
import * as AmqpErrors from "./errors.ts"

/** What a browse needs from the broker it belongs to. */
export interface Dependencies {
  readonly connection: AmqpConnection.AmqpConnectionShape
  /** Declares the parking queue of a dead-letter destination the adapter provisions (`<topic>.dlq`). */
  readonly ensureParking: (destination: string) => Effect.Effect<void, Errors.ConnectionError>
  readonly now: () => number
}

/** One consumer of the browse channel and how many of its deliveries are held (nacked, kept). */
interface Consumer {
  tag: string
  held: number
}

/** The read's progress, shared by the channel's callbacks and the stream's settlements. */
interface State {
  delivered: number
  ended: boolean
  current: Consumer | undefined
}

const errorOf = (destination: string, reason: string, kind: Errors.ErrorKind) =>
  new Errors.SubscribeError({ destination, reason, kind })

const ackError = (destination: string, reason: string, kind: Errors.ErrorKind) =>
  new Errors.AckError({ destination, reason, kind })

/** A delivery of the browse: `ack` removes the message, `nack` keeps it (requeued when the read closes). */
class BrowseDelivery implements Broker.RawDelivery {
  settled = false
  constructor(
    readonly envelope: Envelope.Envelope,
    readonly message: ConsumeMessage,
    readonly channel: Channel,
    readonly consumer: Consumer,
    readonly isClosed: () => boolean,
    readonly onHeld: (consumer: Consumer) => void
  ) {}

  get ack(): Effect.Effect<void, Errors.AckError> {
    return Effect.suspend(() => {
      if (this.settled) return Effect.void
      this.settled = true
      if (this.isClosed()) {
        return Effect.fail(
          ackError(this.envelope.coordinates.destination ?? "", "the browse channel is closed; the message stays", "BrokerClosed")
        )
      }
      return Effect.try({
        try: () => this.channel.ack(this.message),
        catch: (e) =>
          ackError(this.envelope.coordinates.destination ?? "", e instanceof Error ? e.message : String(e), AmqpErrors.classify(e))
      })
    })
  }

  nack(): Effect.Effect<void, Errors.AckError> {
    return Effect.sync(() => {
      if (this.settled) return
      this.settled = true
      this.consumer.held++
      this.onHeld(this.consumer)
    })
  }
}

const promise = <A>(destination: string, what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (e) => errorOf(destination, `${what}: ${e instanceof Error ? e.message : String(e)}`, AmqpErrors.classify(e))
  })

/**
 * Opens a browse of the parking queue named `destination`, in the current scope.
 *
 * @internal
 */
export const make = (deps: Dependencies) =>
(
  destination: string,
  options: Broker.BrowseOptions
): Effect.Effect<Broker.Browse, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefetch = Math.max(1, Math.floor(options.prefetch))
    const fromConnection = (e: Errors.ConnectionError) =>
      errorOf(destination, e.reason, e.kind ?? "Unknown")
    yield* deps.ensureParking(destination).pipe(Effect.mapError(fromConnection))
    const live = yield* deps.connection.current.pipe(Effect.mapError(fromConnection))
    const closedSignal = Deferred.makeUnsafe<void>()
    const channel = yield* Effect.acquireRelease(
      deps.connection.openChannel(live).pipe(Effect.mapError(fromConnection)),
      (ch) => Effect.promise(() => ch.close().catch(() => {})).pipe(Effect.timeout("5 seconds"), Effect.ignore)
    )
    channel.on("close", () => Deferred.doneUnsafe(closedSignal, Exit.void))
    const isClosed = () => Deferred.isDoneUnsafe(closedSignal)

    const info = yield* Effect.tryPromise({
      try: () => channel.checkQueue(destination),
      catch: (e) =>
        AmqpErrors.classify(e) === "NotFound"
          ? errorOf(
            destination,
            `no parking queue named "${destination}" on RabbitMQ: it is not a dead-letter destination (dead letters ` +
              `go to "<topic>.dlq"; for another dead-letter destination declare a queue of the same name bound to ` +
              `its exchange)`,
            "NotFound"
          )
          : errorOf(destination, `checking queue "${destination}" failed: ${e instanceof Error ? e.message : String(e)}`, AmqpErrors.classify(e))
    })
    const retained = info.messageCount
    if (retained === 0) return { retained, deliveries: Stream.empty }

    const queue = yield* Queue.unbounded<Broker.RawDelivery, Errors.SubscribeError | Cause.Done>()
    const state: State = { delivered: 0, ended: false, current: undefined }

    const cancel = (consumer: Consumer) => {
      if (!isClosed()) channel.cancel(consumer.tag).catch(() => {})
    }
    const end = () => {
      if (state.ended) return
      state.ended = true
      if (state.current !== undefined) cancel(state.current)
      Queue.endUnsafe(queue)
    }

    const onMessage = (consumer: Consumer) => (msg: ConsumeMessage | null) => {
      if (msg === null) {
        // cancelled by the server (the queue was deleted)
        if (!state.ended) {
          state.ended = true
          Queue.failCauseUnsafe(queue, Cause.fail(errorOf(destination, `queue "${destination}" was deleted during the read`, "NotFound")))
        }
        return
      }
      if (state.ended || state.delivered >= retained) {
        // arrived after the messages retained at open: not part of this read
        channel.nack(msg, false, true)
        return
      }
      state.delivered++
      const envelope = AmqpEnvelope.toEnvelope(msg, destination, 1, deps.now)
      Queue.offerUnsafe(queue, new BrowseDelivery(envelope, msg, channel, consumer, isClosed, onHeld))
      if (state.delivered === retained) end()
    }

    const startConsumer: Effect.Effect<Consumer, Errors.SubscribeError> = Effect.suspend(() => {
      const consumer: Consumer = { tag: "", held: 0 }
      return promise(destination, "consuming the parking queue failed", () => channel.consume(destination, onMessage(consumer), { noAck: false })).pipe(
        Effect.map((reply) => {
          consumer.tag = reply.consumerTag
          return consumer
        })
      )
    })

    // Held (nacked) messages keep their consumer's slots: past half of them, a fresh consumer takes over (one
    // rotation at a time: a hold during a rotation is looked at again by the next one).
    const rotation = Semaphore.makeUnsafe(1)
    const services = yield* Effect.context<never>()
    const rotate = (consumer: Consumer) =>
      Effect.suspend(() => {
        if (state.ended || consumer !== state.current || consumer.held * 2 < prefetch) return Effect.void
        return startConsumer.pipe(
          Effect.tap((next) =>
            Effect.sync(() => {
              state.current = next
              cancel(consumer)
              if (state.ended) cancel(next)
            })
          ),
          Effect.catch((e) => Queue.fail(queue, e)),
          Effect.asVoid
        )
      }).pipe(rotation.withPermitsIfAvailable(1))
    function onHeld(consumer: Consumer) {
      if (consumer.held * 2 >= prefetch) Effect.runForkWith(services)(rotate(consumer))
    }

    yield* promise(destination, "setting the prefetch failed", () => channel.prefetch(prefetch))
    state.current = yield* startConsumer

    // The channel closing under the read (connection lost) fails it: what was not acked stays in the queue.
    yield* Deferred.await(closedSignal).pipe(
      Effect.andThen(Effect.sync(() => {
        if (state.ended) return
        state.ended = true
        Queue.failCauseUnsafe(
          queue,
          Cause.fail(errorOf(destination, "the browse channel closed before the read ended; unacked messages stay in the queue", "BrokerClosed"))
        )
      })),
      Effect.forkScoped
    )

    // The queue ran dry before `retained` deliveries (another reader took messages): two checks in a row find
    // no ready message and nothing delivered in between (a delivery the broker already sent arrives within the
    // interval), and the read ends.
    const dry: { deliveredAtEmpty: number | undefined } = { deliveredAtEmpty: undefined }
    const dryCheck = Effect.suspend(() => {
      if (state.ended || isClosed()) return Effect.void
      return Effect.tryPromise(() => channel.checkQueue(destination)).pipe(
        Effect.tap((now) =>
          Effect.sync(() => {
            if (now.messageCount > 0) dry.deliveredAtEmpty = undefined
            else if (dry.deliveredAtEmpty === state.delivered) end()
            else dry.deliveredAtEmpty = state.delivered
          })
        ),
        Effect.ignore
      )
    })
    yield* dryCheck.pipe(
      Effect.delay("500 millis"),
      Effect.repeat({ until: () => state.ended || isClosed() }),
      Effect.forkScoped
    )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        state.ended = true
        Queue.endUnsafe(queue)
      })
    )

    return { retained, deliveries: Stream.fromQueue(queue) }
  })
