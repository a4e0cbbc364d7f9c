/**
 * A subscription: receive calls (long polls) → the kit's `DeliveryQueue` → `Subscription`. Demand drives the
 * receives: the subscription holds `prefetch` permits; a receive asks for as many messages as it holds permits
 * (at most 10, SQS's limit) and each message keeps its permit until it is settled, so at most `prefetch`
 * messages are held unsettled. Every held message has a lease that a heartbeat extends
 * (`ChangeMessageVisibility` to the queue's visibility timeout, every third of it), so a slow handler keeps its
 * message invisible to others. `stopIntake` stops receiving and gives back (visibility 0) what was received and
 * not taken; closing also gives back what was taken and not settled. A failed receive is retried on the
 * connection's `reconnectSchedule`; when it gives up, the stream fails with the classified `SubscribeError`.
 *
 * SQS has no consumer groups: every subscription of a destination competes for its queue's messages,
 * whatever its `group` (see the SQS capabilities).
 */
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs"
import type { Message } from "@aws-sdk/client-sqs"
import { Errors } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import { DeliveryQueue } from "@switchyard/core/adapter"
import { Clock, Duration, Effect, Fiber, Queue, Schedule, type Scope } from "effect"
import type { SqsConnectionShape } from "../SqsConnection.ts"
import type { QueueInfo, SqsTopologyShape } from "../SqsTopology.ts"
import * as Delivery from "./delivery.ts"
import { fromSqs } from "./envelope.ts"
import { subscribeError } from "./errors.ts"
import type { Settler } from "./settler.ts"

/** What a subscription needs. */
export interface Context {
  readonly connection: SqsConnectionShape
  readonly topology: SqsTopologyShape
  readonly settler: Settler
}

const receiversFor = (prefetch: number, configured: number | undefined) =>
  configured ?? Math.max(1, Math.min(4, Math.ceil(prefetch / 10)))

/** Opens a subscription on `destination` in the current scope. */
export const subscribe = (
  context: Context,
  destination: string,
  options: Broker.SubscribeOptions
): Effect.Effect<Broker.Subscription, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const { connection, topology, settler } = context
    const { client, resolved } = connection
    const toSubscribeError = (e: { readonly reason: Errors.Reason }) => new Errors.SubscribeError({ destination, reason: e.reason })
    const first = yield* topology.queue(destination).pipe(Effect.mapError(toSubscribeError))
    const prefetch = Math.max(1, options.prefetch)
    const queue = yield* DeliveryQueue.make<Delivery.SqsDelivery>({ capacity: prefetch })
    const permits = yield* Queue.bounded<void>(prefetch)
    yield* Queue.offerAll(permits, Array.from({ length: prefetch }, () => undefined))
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    // receipt handle → when its visibility was last set (epoch ms); a handle is here while it is held
    const leases = new Map<string, number>()
    const url = first.url
    const visibility = first.visibilityTimeoutSeconds

    const releasePermit = () => Queue.offerUnsafe(permits, undefined)
    const settle = (handle: string, operation: Effect.Effect<void, Errors.AckError>) =>
      Effect.suspend(() => {
        leases.delete(handle)
        releasePermit()
        return operation
      })
    const handlers: Delivery.Handlers = {
      ack: (handle) => settle(handle, settler.delete(destination, url, handle)),
      nack: (handle, seconds) => settle(handle, settler.changeVisibility(destination, url, handle, seconds)),
      isLive: (handle) => leases.has(handle)
    }

    /** Makes messages visible again now (given back unhandled); failures only delay their redelivery. */
    const giveBack = (handles: ReadonlyArray<string>) =>
      Effect.forEach(handles, (handle) => {
        leases.delete(handle)
        releasePermit()
        return settler.changeVisibility(destination, url, handle, 0)
      }, { discard: true })

    const deliver = (info: QueueInfo, message: Message) => {
      const handle = message.ReceiptHandle
      if (handle === undefined) return
      leases.set(handle, now())
      const envelope = fromSqs(destination, message, now)
      queue.offer(Delivery.make(destination, handle, envelope, Delivery.deliveryLimitOf(info.maxReceiveCount), handlers))
    }

    const receive = (info: QueueInfo, count: number) =>
      Effect.tryPromise({
        try: (signal) =>
          client.send(
            new ReceiveMessageCommand({
              QueueUrl: info.url,
              MaxNumberOfMessages: count,
              WaitTimeSeconds: resolved.waitTimeSeconds,
              MessageAttributeNames: ["All"],
              MessageSystemAttributeNames: ["All"]
            }),
            { abortSignal: signal }
          ),
        catch: (error) => subscribeError(destination, error, "ReceiveMessage")
      })

    /** One receive: as many messages as permits are free (1 to 10); unused permits go back. */
    const poll = Effect.gen(function*() {
      const taken = yield* Queue.takeBetween(permits, 1, 10)
      // A receive is never aborted: SQS would still hand messages to the abandoned long poll, and they would
      // stay invisible for a visibility timeout. Stopping waits for it (at most `waitTime`), then gives back.
      yield* topology.queue(destination).pipe(
        Effect.mapError(toSubscribeError),
        Effect.flatMap((info) =>
          Effect.map(receive(info, taken.length), (r) => {
            const messages = r.Messages ?? []
            for (const message of messages) deliver(info, message)
            for (let unused = taken.length - messages.length; unused > 0; unused--) releasePermit()
          })
        ),
        Effect.tapError((e) => e.reason._tag === "NotFound" ? topology.forget(destination) : Effect.void),
        Effect.onError(() => Queue.offerAll(permits, taken)),
        Effect.uninterruptible
      )
    })

    const pollForever = poll.pipe(
      Effect.tapError((e) => Effect.logWarning(`SQS: receive from ${destination} failed, retrying: ${e.reason.message}`)),
      Effect.retry(resolved.reconnectSchedule),
      Effect.forever,
      Effect.catch((e) => Effect.sync(() => queue.fail(e)))
    )
    const receivers = yield* Effect.forEach(
      Array.from({ length: receiversFor(prefetch, resolved.receivers) }),
      () => Effect.forkDetach(pollForever)
    )

    /** Extends the leases due (older than a third of the visibility timeout). */
    const period = Math.max(500, (visibility * 1000) / 3)
    const heartbeat = Effect.gen(function*() {
      const at = now()
      const due = [...leases].filter(([, since]) => at - since >= period).map(([handle]) => handle)
      for (const handle of due) leases.set(handle, at)
      yield* Effect.forEach(due, (handle) => settler.changeVisibility(destination, url, handle, visibility), { discard: true })
    }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(period / 2))))
    yield* Effect.forkScoped(heartbeat)

    // Every receiver is signalled at once, then awaited: one by one, a receiver in its long poll would hold
    // the next one's interruption back past the close's time bound, and it would poll on after the close.
    // The bound is a long poll plus a margin: a receive in flight is never aborted (see `poll`).
    const closeWithin = Duration.seconds(resolved.waitTimeSeconds + 5)
    const stopIntake = Effect.gen(function*() {
      yield* Fiber.interruptAll(receivers)
      const untaken = yield* queue.drain
      yield* Effect.forEach(untaken, Delivery.abandon, { discard: true })
      yield* giveBack(untaken.map((d) => d.handle))
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* stopIntake
        queue.end()
        yield* giveBack([...leases.keys()])
      }).pipe(Effect.timeout(closeWithin), Effect.ignore)
    )

    return {
      deliveries: queue.stream,
      stopIntake: Effect.ignore(Effect.timeout(stopIntake, closeWithin))
    } satisfies Broker.Subscription
  })
