/**
 * Coalescing of concurrent single publishes: each caller puts its encoded message on its destination's
 * bounded queue and waits; one fiber per destination takes what is waiting (up to `batchSize`) and sends
 * it with one broker call, then completes each caller with its own receipt or error. Many fibers publishing
 * one message each cost one broker round trip per batch instead of one per message.
 *
 * - A caller's own sequential publishes stay in order (it waits for each; the sender is one fiber, FIFO).
 * - A caller interrupted before its message was taken gives it up: the sender skips a completed waiter.
 * - The queue is bounded: when it is full, callers wait (backpressure).
 * - Up to `inFlight` broker calls per destination run at once (the broker's `publishConcurrency`): a
 *   broker that pipelines writes and confirms each on its own (AMQP confirms, NATS) does not make the next
 *   batch wait a whole confirm round trip; with 1, the next batch waits for the previous one.
 * - A caller that finds nobody waiting and no call in flight sends its message itself, in its own fiber: a
 *   broker that confirms at once (in memory) never makes a caller wait for a hand-over, and sparse traffic
 *   pays no hand-over either; callers arriving while a call is in flight are batched by the sender (so the
 *   callers of a confirmed batch, publishing again at once, make one call, not one each).
 */
import type { Context } from "effect"
import { Deferred, Effect, Exit, Fiber, Option, Queue, Result, Semaphore } from "effect"
import * as Scope from "effect/Scope"
import type { OnConfirmed } from "../../Broker.ts"
import type { OutgoingMessage, PublishReceipt } from "../../Envelope.ts"
import type { PublishError } from "../../Errors.ts"

/**
 * Sends a batch; one result per message, in order (a failure of the call fails every message). A broker that
 * confirms messages one by one tells each confirm through `onConfirmed` as it arrives (`Broker.OnConfirmed`).
 */
export type SendEach = (
  destination: string,
  messages: ReadonlyArray<OutgoingMessage>,
  onConfirmed: OnConfirmed
) => Effect.Effect<ReadonlyArray<Result.Result<PublishReceipt, PublishError>>, PublishError>

/** Bounds of the coalescer. */
export interface Options {
  /** The most messages per broker call. */
  readonly batchSize: number
  /** The most messages waiting per destination; callers wait beyond it. */
  readonly capacity: number
  /** The most broker calls in flight per destination (at least 1). */
  readonly inFlight: number
}

/** One destination: its waiting callers, a permit per broker call in flight, batches taken but not yet sent. */
interface Lane {
  readonly queue: Queue.Queue<Waiter>
  readonly slots: Semaphore.Semaphore
  /** Batches the sender holds while it waits for a slot (touched in synchronous steps only). */
  held: number
  /** Broker calls in flight, batches and lone messages (touched in synchronous steps only). */
  calls: number
}

interface Waiter {
  readonly message: OutgoingMessage
  readonly deferred: Deferred.Deferred<PublishReceipt, PublishError>
}

/** The coalescer of one publisher. */
export interface Coalescer {
  /** Publishes one message through its destination's batch; resolves with its own receipt. */
  readonly publish: (destination: string, message: OutgoingMessage) => Effect.Effect<PublishReceipt, PublishError>
  /** Messages waiting to be taken for a destination (at most `capacity`). */
  readonly waiting: (destination: string) => number
}

const complete = (waiters: ReadonlyArray<Waiter>, exit: Exit.Exit<ReadonlyArray<Result.Result<PublishReceipt, PublishError>>, PublishError>) => {
  if (Exit.isFailure(exit)) {
    const failed: Exit.Exit<never, PublishError> = Exit.failCause(exit.cause)
    for (const waiter of waiters) Deferred.doneUnsafe(waiter.deferred, failed)
    return
  }
  waiters.forEach((waiter, i) => {
    const result = exit.value[i]
    Deferred.doneUnsafe(
      waiter.deferred,
      result === undefined
        ? Exit.die(new Error(`the broker answered ${exit.value.length} of ${waiters.length} messages`))
        : Result.isSuccess(result)
        ? Exit.succeed(result.success)
        : Exit.fail(result.failure)
    )
    })
}

// A lone message's caller waits for the call itself.
const ignoreConfirms: OnConfirmed = () => {}

const interruptAll = (waiters: ReadonlyArray<Waiter>) =>
  Effect.forEach(waiters, (waiter) => Deferred.interrupt(waiter.deferred), { discard: true })

/**
 * Builds the coalescer; its sender fibers live in `scope` and run with `context` (the publisher's own, not
 * that of whichever caller came first: its span, log level or tracer settings are not the sender's).
 */
export const make = (send: SendEach, options: Options, scope: Scope.Scope, context: Context.Context<never>): Coalescer => {
  const lanes = new Map<string, Lane>()

  const sendBatch = (destination: string, taken: ReadonlyArray<Waiter>) =>
    Effect.suspend(() => {
      // Callers interrupted while waiting (also while the batch waited for a slot) completed their own
      // deferred: their message is not sent.
      const live = taken.filter((waiter) => !Deferred.isDoneUnsafe(waiter.deferred))
      if (live.length === 0) return Effect.void
      // A caller whose message is confirmed goes on at once, not when the rest of its batch is: it publishes
      // again while the others are in flight, so the batches of many callers never move in lockstep.
      const confirmed: OnConfirmed = (index, receipt) => {
        const waiter = live[index]
        if (waiter !== undefined) Deferred.doneUnsafe(waiter.deferred, Exit.succeed(receipt))
      }
      // A sender interrupted mid-call (the publisher's scope closing) interrupts the callers it was sending for.
      return Effect.onInterrupt(
        Effect.flatMap(
          Effect.exit(send(destination, live.map((waiter) => waiter.message), confirmed)),
          (exit) => Effect.sync(() => complete(live, exit))
        ),
        () => interruptAll(live)
      )
    })

  // Suspended: built only when a slot was free (a broker's publish may do work when called).
  const sendOne = (destination: string, message: OutgoingMessage) =>
    Effect.flatMap(Effect.suspend(() => send(destination, [message], ignoreConfirms)), ([result]) =>
      result === undefined
        ? Effect.die(new Error("the broker answered no message of one"))
        : Result.isSuccess(result)
        ? Effect.succeed(result.success)
        : Effect.fail(result.failure))

  const enqueue = (queue: Queue.Queue<Waiter>, message: OutgoingMessage) => {
    const deferred = Deferred.makeUnsafe<PublishReceipt, PublishError>()
    return Effect.onInterrupt(
      Effect.flatMap(Queue.offer(queue, { message, deferred }), (offered) => offered ? Deferred.await(deferred) : Effect.interrupt),
      () => Deferred.interrupt(deferred)
    )
  }

  // Takes what waits, then a free slot (callers arriving meanwhile wait for the next batch), and sends in a
  // fiber of the publisher's scope holding the slot. When the scope closes, the calls in flight and the
  // sender are interrupted, and so is whoever still waits: nobody is left hanging.
  /** `call` counted in `lane.calls` while it runs. */
  const counted = <A, E>(lane: Lane, call: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      lane.calls++
      return Effect.ensuring(call, Effect.sync(() => void lane.calls--))
    })

  const sender = (destination: string, lane: Lane) =>
    Effect.forever(
      Effect.flatMap(Queue.takeBetween(lane.queue, 1, options.batchSize), (taken) => {
        lane.held++
        const slot = Effect.ensuring(
          Effect.onInterrupt(lane.slots.take(1), () => interruptAll(taken)),
          Effect.sync(() => void lane.held--)
        )
        return Effect.andThen(
          slot,
          Effect.forkIn(Effect.ensuring(counted(lane, sendBatch(destination, taken)), lane.slots.release(1)), scope, {
            startImmediately: true
          })
        )
      })
    ).pipe(
      Effect.ensuring(
        Effect.flatMap(Queue.clear(lane.queue), (left) =>
          Effect.andThen(Queue.shutdown(lane.queue), interruptAll(left)))
      )
    )

  const laneOf = (destination: string): Effect.Effect<Lane> => {
    const existing = lanes.get(destination)
    if (existing !== undefined) return Effect.succeed(existing)
    return Effect.flatMap(Queue.bounded<Waiter>(options.capacity), (queue) => {
      const raced = lanes.get(destination)
      if (raced !== undefined) return Effect.succeed(raced)
      const lane: Lane = { queue, slots: Semaphore.makeUnsafe(Math.max(1, options.inFlight)), held: 0, calls: 0 }
      lanes.set(destination, lane)
      // Run from the publisher's context (a fork would inherit the caller's span); stopped with `scope`.
      const fiber = Effect.runForkWith(context)(sender(destination, lane))
      return Effect.as(Scope.addFinalizer(scope, Fiber.interrupt(fiber)), lane)
    })
  }

  return {
    publish: (destination, message) =>
      Effect.flatMap(laneOf(destination), (lane) =>
        // Alone only when nobody else waits, neither in the queue nor in a batch held for a slot (a caller
        // publishing again right after its confirm would otherwise overtake them every time), and no call is
        // in flight (whoever comes while one is joins the next batch).
        Queue.sizeUnsafe(lane.queue) === 0 && lane.held === 0 && lane.calls === 0
          ? Effect.flatMap(
            lane.slots.withPermitsIfAvailable(1)(counted(lane, sendOne(destination, message))),
            (sent) => Option.isSome(sent) ? Effect.succeed(sent.value) : enqueue(lane.queue, message)
          )
          : enqueue(lane.queue, message)),
    waiting: (destination) => {
      const lane = lanes.get(destination)
      return lane === undefined ? 0 : Queue.sizeUnsafe(lane.queue)
    }
  }
}
