/**
 * Subscribe: a consumer group is a durable queue `<destination>.<group>`; a subscription owns a channel with
 * `basic.qos(prefetch)` whose consume callback hands deliveries to the kit's `DeliveryQueue` (capacity =
 * prefetch: the broker never sends more). The channel is supervised by the kit's `Supervisor`: when it closes
 * (a dropped connection, a deleted queue) the subscription re-provisions its queue and re-attaches on the
 * reconnect schedule; what the old channel delivered but the consumer had not taken is dropped (the broker
 * redelivers it). `stopIntake` cancels the consumer and gives back what was buffered, for other members.
 */
import type { Channel, ConsumeMessage } from "amqplib"
import type { Broker } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { DeliveryQueue, Supervisor } from "@switchyard/core/adapter"
import type { Scope } from "effect"
import { Deferred, Duration, Effect, Ref, Stream } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"
import * as AmqpTopology from "../AmqpTopology.ts"
import * as Channels from "./channel.ts"
import * as Delivery from "./delivery.ts"
import * as Provision from "./provision.ts"
import type * as Publish from "./publish.ts"

/** What subscriptions need from the broker they belong to. */
export interface Dependencies {
  readonly connection: AmqpConnection.AmqpConnectionShape
  readonly plan: Provision.Plan
  readonly publish: Publish.Publish
  readonly now: () => number
  /** Bound on opening a subscription, including waiting for a reconnect. */
  readonly timeout: Duration.Duration
}

/** The channel a subscription consumes on, its settlements, and its consumer. */
interface Attached extends Channels.Watched<Channel> {
  readonly acks: Delivery.Acks
  readonly consumerTag: string
}

interface Parts {
  readonly deps: Dependencies
  readonly destination: string
  readonly group: string
  readonly prefetch: number
  readonly queue: DeliveryQueue.DeliveryQueue<Delivery.Delivery>
  readonly context: Delivery.Context
  readonly intakeStopped: Deferred.Deferred<void>
}

/** Declares the destination and the group's queue (on first use; again after a reconnect). */
const provision = (deps: Dependencies, destination: string, group: string) =>
  deps.connection.declare(deps.plan.destination(destination)).pipe(
    Effect.andThen(deps.connection.declare(deps.plan.group(destination, group)))
  )

const reprovision = (parts: Parts) =>
  parts.deps.connection.forget(parts.deps.plan.group(parts.destination, parts.group)).pipe(
    Effect.andThen(provision(parts.deps, parts.destination, parts.group))
  )

/** The consume callback: each delivery goes to the queue; the server cancelling the consumer drops the channel. */
const onMessage = (parts: Parts, watched: Channels.Watched<Channel>, acks: Delivery.Acks) => (message: ConsumeMessage | null) => {
  if (message === null) {
    // cancelled by the server (the queue was deleted): drop the channel; the supervisor re-attaches
    Effect.runFork(Channels.close(watched.channel))
    return
  }
  acks.delivered(message)
  const delivery = Delivery.make(message, watched, acks, parts.context, parts.deps.now)
  // never happens while the broker honours basic.qos; if it does, the message goes back rather than grow the queue
  if (!parts.queue.offer(delivery)) acks.nack(message, true)
}

const consume = (parts: Parts, watched: Channels.Watched<Channel>, acks: Delivery.Acks) =>
  Effect.acquireRelease(
    Provision.run(() =>
      watched.channel.prefetch(parts.prefetch).then(() =>
        watched.channel.consume(
          AmqpTopology.groupQueueName(parts.destination, parts.group),
          onMessage(parts, watched, acks),
          { noAck: false }
        )
      )
    ),
    (reply) => Effect.ignore(Provision.run(() => watched.channel.cancel(reply.consumerTag)))
  )

/** Opens the subscription's channel and consumer, in the scope given (released when it is replaced). */
const attach = Effect.fn("AmqpSubscription.attach")(function*(
  parts: Parts,
  attachments: Ref.Ref<number>
): Effect.fn.Return<Attached, Errors.Reason, Scope.Scope> {
    const { connection } = parts.deps
    if ((yield* Ref.getAndUpdate(attachments, (n) => n + 1)) > 0) yield* Effect.mapError(reprovision(parts), (e) => e.reason)
    const live = yield* Effect.mapError(connection.current, (e) => e.reason)
    const watched = yield* Effect.map(
      Effect.acquireRelease(
        Effect.map(Effect.mapError(connection.openChannel(live), (e) => e.reason), Channels.watch),
        (watched) => Channels.close(watched.channel)
      ),
      (watched) => ({ ...watched, acks: new Delivery.Acks(watched.channel, () => Channels.isOpen(watched)) })
    )
    // the acks held go out before the channel closes (finalizers run in reverse)
    yield* Effect.addFinalizer(() => Effect.sync(() => watched.acks.flush()))
    const reply = yield* consume(parts, watched, watched.acks)
    return { ...watched, consumerTag: reply.consumerTag }
  })

/** The channel was lost: drop what it delivered and was not taken (stale), and re-attach unless intake stopped. */
const lost = (parts: Parts, queueName: string) => (attached: Attached) =>
  Deferred.await(attached.closed).pipe(
    Effect.andThen(parts.queue.drain),
    Effect.andThen(Effect.suspend(() =>
      Deferred.isDoneUnsafe(parts.intakeStopped)
        ? Effect.never
        : Effect.logWarning(`subscription to ${queueName} lost its channel; re-attaching`)
    ))
  )

/** Stops intake once: cancels the consumer, then gives back what was buffered (not counted as an attempt). */
const stopIntakeOf = Effect.fn("AmqpSubscription.stopIntake")(function*(
  parts: Parts,
  supervised: Supervisor.Supervised<Attached, Errors.Reason>
) {
    yield* Deferred.succeed(parts.intakeStopped, undefined)
    const current = yield* supervised.current
    if (Channels.isOpen(current)) {
      yield* Provision.run(() => current.channel.cancel(current.consumerTag)).pipe(Effect.timeout("5 seconds"), Effect.ignore)
    }
    const buffered = yield* parts.queue.drain
    yield* Effect.forEach(buffered, (delivery) => Effect.ignore(delivery.release), { discard: true })
  })

const scheduleRetry = (deps: Dependencies, destination: string, queueName: string): Delivery.Context["scheduleRetry"] =>
(envelope, delayMillis) => {
  const retry = AmqpTopology.retryQueue(queueName, delayMillis)
  return deps.connection.declare({ queues: [retry] }).pipe(
    Effect.andThen(deps.publish.publish(
      { destination, exchange: "", routingKey: retry.name, attempt: envelope.attempt + 1 },
      [envelope]
    ))
  )
}

const open = Effect.fn("AmqpSubscription.open")(function*(
  deps: Dependencies,
  destination: string,
  options: Broker.SubscribeOptions
) {
  const subscribeError = (reason: Errors.Reason) => new Errors.SubscribeError({ destination, reason })
  const queueName = AmqpTopology.groupQueueName(destination, options.group)
  const prefetch = Math.max(1, Math.floor(options.prefetch))
  yield* Effect.mapError(provision(deps, destination, options.group), (e) => subscribeError(e.reason))
  const queue = yield* DeliveryQueue.make<Delivery.Delivery>({ capacity: prefetch })
  const parts: Parts = {
    deps,
    destination,
    group: options.group,
    prefetch,
    queue,
    context: { destination, queue: queueName, nacks: new Map(), scheduleRetry: scheduleRetry(deps, destination, queueName) },
    intakeStopped: Deferred.makeUnsafe<void>()
  }
  yield* Effect.addFinalizer(() => Effect.sync(queue.end))
  const supervised = yield* Supervisor.make({
    acquire: attach(parts, yield* Ref.make(0)),
    lost: lost(parts, queueName),
    schedule: deps.connection.reconnectSchedule
  }).pipe(Effect.mapError(subscribeError))
  yield* Deferred.await(supervised.failure).pipe(
    Effect.catch((reason) => Effect.sync(() => queue.fail(subscribeError(reason)))),
    Effect.forkScoped
  )
  // once: the Consumer runs it on shutdown and the stream's end runs it again
  const stopIntake = yield* Effect.cached(Effect.ignore(stopIntakeOf(parts, supervised)))
  return {
    deliveries: queue.stream.pipe(Stream.ensuring(stopIntake)) as Stream.Stream<Broker.RawDelivery, Errors.SubscribeError>,
    stopIntake
  } satisfies Broker.Subscription
})

/** Opens a subscription of a consumer group, in the current scope. */
export const subscribe = (deps: Dependencies) =>
(destination: string, options: Broker.SubscribeOptions): Effect.Effect<Broker.Subscription, Errors.SubscribeError, Scope.Scope> =>
  open(deps, destination, options).pipe(
    Effect.timeoutOrElse({
      duration: deps.timeout,
      orElse: () =>
        Effect.fail(new Errors.SubscribeError({
          destination,
          reason: Errors.reason("Timeout", `not registered within ${Duration.toMillis(deps.timeout)}ms`)
        }))
    })
  )
