/**
 * An operator's read of a RabbitMQ parking queue (`Broker.browse`): the queue named after the dead-letter
 * destination itself, not a group queue bound to it.
 *
 * - `retained` is the queue's ready-message count at open (`queue.declare` passive, i.e. `checkQueue`);
 * - a dedicated channel consumes the queue with `basic.qos(prefetch)` into the kit's `DeliveryQueue`; the first
 *   `retained` deliveries are the messages retained at open (the queue is FIFO and appends what arrives later),
 *   so the stream ends after them. Deliveries past that count are requeued at once. A consumer, not
 *   `basic.get`, because `basic.get` is one round trip per message while a consumer streams up to `prefetch`;
 * - if the queue runs dry before (another reader took messages), a passive declare on the same channel finds it
 *   empty while nothing arrived since, and the stream ends too (the channel's frames are ordered: a delivery
 *   sent before the declare's reply is seen before it);
 * - each delivery settles once through the kit's `Settlement`: `ack` is `basic.ack` (removed for good); `nack`
 *   holds the message unacknowledged until the read's scope closes, and closing the channel requeues it (and
 *   every unsettled delivery). Requeueing at once would hand it straight back to this consumer. Held messages
 *   keep their consumer's prefetch slots, so once half of a consumer's slots are held a fresh consumer takes
 *   over on the same channel (unacked messages belong to the channel) and the old one is cancelled.
 */
import type { Channel, ConsumeMessage } from "amqplib"
import type { Broker } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { DeliveryQueue, Settlement } from "@switchyard/core/adapter"
import type { Scope } from "effect"
import { Deferred, Effect, Schedule, Semaphore, Stream } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"
import * as Channels from "./channel.ts"
import * as AmqpEnvelope from "./envelope.ts"
import * as AmqpErrors from "./errors.ts"
import * as Provision from "./provision.ts"

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

/** One read: its channel, its queue, and its progress (shared by the channel's callbacks and settlements). */
interface Read {
  readonly destination: string
  readonly prefetch: number
  readonly retained: number
  readonly watched: Channels.Watched<Channel>
  readonly queue: DeliveryQueue.DeliveryQueue<Broker.RawDelivery>
  readonly ended: Deferred.Deferred<void>
  readonly progress: { delivered: number; current: Consumer | undefined }
  readonly onHeld: (consumer: Consumer) => void
}

const subscribeError = (destination: string, reason: Errors.Reason) => new Errors.SubscribeError({ destination, reason })

const isOver = (read: Read): boolean => Deferred.isDoneUnsafe(read.ended) || !Channels.isOpen(read.watched)

const cancel = (read: Read, consumer: Consumer): void => {
  if (Channels.isOpen(read.watched)) Effect.runFork(Effect.ignore(Provision.run(() => read.watched.channel.cancel(consumer.tag))))
}

/** Ends the read after what was handed out: the current consumer is cancelled. */
const end = (read: Read): void => {
  if (!Deferred.doneUnsafe(read.ended, Effect.void)) return
  if (read.progress.current !== undefined) cancel(read, read.progress.current)
  read.queue.end()
}

/** Fails the read (unless it ended): what was not acked stays in the queue. */
const failRead = (read: Read, reason: Errors.Reason): void => {
  if (Deferred.doneUnsafe(read.ended, Effect.void)) read.queue.fail(subscribeError(read.destination, reason))
}

const delivery = (read: Read, message: ConsumeMessage, consumer: Consumer, now: () => number): Broker.RawDelivery => {
  const envelope = AmqpEnvelope.toEnvelope(message, read.destination, 1, now)
  const settlement = Settlement.make(read.destination, {
    ack: Effect.try({
      try: () => read.watched.channel.ack(message),
      catch: (error) => new Errors.AckError({ destination: read.destination, reason: AmqpErrors.reasonOf(error) })
    }),
    nack: () =>
      Effect.sync(() => {
        consumer.held++
        read.onHeld(consumer)
      }),
    isLive: () => Channels.isOpen(read.watched)
  })
  return { envelope, ack: settlement.ack, nack: settlement.nack }
}

const onMessage = (read: Read, consumer: Consumer, now: () => number) => (message: ConsumeMessage | null) => {
  if (message === null) return failRead(read, Errors.reason("NotFound", `queue "${read.destination}" was deleted during the read`))
  // arrived after the messages retained at open, or past the queue's room: not part of this read (now)
  if (Deferred.isDoneUnsafe(read.ended) || read.progress.delivered >= read.retained) {
    return read.watched.channel.nack(message, false, true)
  }
  if (!read.queue.offer(delivery(read, message, consumer, now))) return read.watched.channel.nack(message, false, true)
  read.progress.delivered++
  if (read.progress.delivered === read.retained) end(read)
}

const startConsumer = (read: Read, now: () => number): Effect.Effect<Consumer, Errors.SubscribeError> =>
  Effect.suspend(() => {
    const consumer: Consumer = { tag: "", held: 0 }
    return Provision.run(() => read.watched.channel.consume(read.destination, onMessage(read, consumer, now), { noAck: false })).pipe(
      Effect.map((reply) => Object.assign(consumer, { tag: reply.consumerTag })),
      Effect.mapError((reason) => subscribeError(read.destination, reason))
    )
  })

/** Past half of its slots held, a fresh consumer takes over (one rotation at a time). */
const rotate = (read: Read, consumer: Consumer, now: () => number) =>
  Effect.suspend(() => {
    if (isOver(read) || consumer !== read.progress.current || consumer.held * 2 < read.prefetch) return Effect.void
    return startConsumer(read, now).pipe(
      Effect.tap((next) =>
        Effect.sync(() => {
          read.progress.current = next
          cancel(read, consumer)
          if (Deferred.isDoneUnsafe(read.ended)) cancel(read, next)
        })
      ),
      Effect.catch((e) => Effect.sync(() => failRead(read, e.reason))),
      Effect.asVoid
    )
  })

/**
 * The queue ran dry before `retained` deliveries (another reader took messages): two checks in a row find no
 * ready message and nothing delivered in between (a delivery the broker already sent arrives within the
 * interval), and the read ends.
 */
const watchDry = (read: Read) => {
  const seen: { deliveredAtEmpty: number | undefined } = { deliveredAtEmpty: undefined }
  const check = Provision.run(() => read.watched.channel.checkQueue(read.destination)).pipe(
    Effect.tap((info) =>
      Effect.sync(() => {
        if (info.messageCount > 0) seen.deliveredAtEmpty = undefined
        else if (seen.deliveredAtEmpty === read.progress.delivered) end(read)
        else seen.deliveredAtEmpty = read.progress.delivered
      })
    ),
    Effect.ignore
  )
  return Effect.suspend(() => isOver(read) ? Effect.void : check).pipe(
    Effect.delay("500 millis"),
    Effect.repeat({ schedule: Schedule.forever, until: () => isOver(read) }),
    Effect.forkScoped
  )
}

const retainedIn = (channel: Channel, destination: string) =>
  Provision.run(() => channel.checkQueue(destination)).pipe(
    Effect.map((info) => info.messageCount),
    Effect.mapError((reason) =>
      subscribeError(destination, reason._tag === "NotFound"
        ? Errors.reason(
          "NotFound",
          `no parking queue named "${destination}" on RabbitMQ: it is not a dead-letter destination (dead letters ` +
            `go to "<topic>.dlq"; for another dead-letter destination declare a queue of the same name bound to ` +
            `its exchange)`,
          404
        )
        : Errors.reason(reason._tag, `checking queue "${destination}" failed: ${reason.message}`, reason.code))
    )
  )

const read = Effect.fn("AmqpBrowse.read")(function*(deps: Dependencies, destination: string, options: Broker.BrowseOptions) {
  const prefetch = Math.max(1, Math.floor(options.prefetch))
  const fromConnection = (e: Errors.ConnectionError) => subscribeError(destination, e.reason)
  yield* Effect.mapError(deps.ensureParking(destination), fromConnection)
  const live = yield* Effect.mapError(deps.connection.current, fromConnection)
  const watched = yield* Effect.acquireRelease(
    Effect.map(Effect.mapError(deps.connection.openChannel(live), fromConnection), Channels.watch),
    (watched) => Channels.close(watched.channel)
  )
  const retained = yield* retainedIn(watched.channel, destination)
  if (retained === 0) return { retained, deliveries: Stream.empty } satisfies Broker.Browse
  const rotation = yield* Semaphore.make(1)
  const services = yield* Effect.context<never>()
  const state: Read = {
    destination,
    prefetch,
    retained,
    watched,
    queue: yield* DeliveryQueue.make<Broker.RawDelivery>({ capacity: prefetch }),
    ended: Deferred.makeUnsafe<void>(),
    progress: { delivered: 0, current: undefined },
    onHeld: (consumer) => {
      if (consumer.held * 2 >= prefetch) Effect.runForkWith(services)(rotation.withPermitsIfAvailable(1)(rotate(state, consumer, deps.now)))
    }
  }
  yield* Effect.mapError(Provision.run(() => watched.channel.prefetch(prefetch)), (reason) => subscribeError(destination, reason))
  state.progress.current = yield* startConsumer(state, deps.now)
  // the channel closing under the read (connection lost) fails it: what was not acked stays in the queue
  yield* Deferred.await(watched.closed).pipe(
    Effect.andThen(Effect.sync(() =>
      failRead(state, Errors.reason("BrokerClosed", "the browse channel closed before the read ended; unacked messages stay in the queue"))
    )),
    Effect.forkScoped
  )
  yield* watchDry(state)
  yield* Effect.addFinalizer(() => Effect.sync(() => end(state)))
  return { retained, deliveries: state.queue.stream } satisfies Broker.Browse
})

/** Opens a browse of the parking queue named `destination`, in the current scope. */
export const make = (deps: Dependencies) =>
(destination: string, options: Broker.BrowseOptions): Effect.Effect<Broker.Browse, Errors.SubscribeError, Scope.Scope> =>
  read(deps, destination, options)
