/**
 * Settle calls batched per turn: acks become `DeleteMessageBatch`, nacks, releases and visibility extensions
 * `ChangeMessageVisibilityBatch`. A settlement only queues its request (like Kafka's acks, which the runloop
 * commits later): one fiber takes everything queued at once, groups it per queue (and visibility) and sends
 * batches of 10 concurrently. Calls that fail for a retryable reason (the endpoint restarting) are retried
 * briefly; a request that still fails is logged, and SQS redelivers its message after the visibility timeout
 * (at-least-once). Closing the settler's scope first waits (up to 10 s) for what is queued or in flight.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type SQSClient
} from "@aws-sdk/client-sqs"
import { Errors } from "@switchyard/core"
import { Deferred, Effect, Queue, Schedule, type Scope } from "effect"
import { ackError } from "./errors.ts"

/** One settle request. `visibility` undefined: delete (ack); a number: change the visibility (seconds). */
interface Request {
  readonly destination: string
  readonly url: string
  readonly handle: string
  readonly visibility: number | undefined
  readonly done: Deferred.Deferred<void>
}

/** The batched settle calls of a broker. */
export interface Settler {
  /** Queues the deletion of a received message (ack). */
  readonly delete: (destination: string, url: string, handle: string) => Effect.Effect<void>
  /** Queues a change of a received message's visibility timeout (0: visible again now). */
  readonly changeVisibility: (destination: string, url: string, handle: string, seconds: number) => Effect.Effect<void>
}

/** The longest visibility timeout SQS accepts (12 hours). */
export const maxVisibilitySeconds = 43_200

const retrySchedule = Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 6 }))

const groupKey = (r: Request) => `${r.visibility ?? "delete"} ${r.url}`

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, i * size + size))

/** Makes the settler; its fiber stops with the scope. */
export const make = (client: SQSClient): Effect.Effect<Settler, never, Scope.Scope> =>
  Effect.gen(function*() {
    const requests = yield* Queue.unbounded<Request>()
    // queued or in flight: awaited when the scope closes (this finalizer runs before the fiber is stopped)
    const pending = new Set<Deferred.Deferred<void>>()

    const call = (batch: ReadonlyArray<Request>) => {
      const first = batch[0]!
      const entries = batch.map((r, i) => ({ Id: String(i), ReceiptHandle: r.handle }))
      const send = (signal: AbortSignal) =>
        first.visibility === undefined
          ? client.send(new DeleteMessageBatchCommand({ QueueUrl: first.url, Entries: entries }), { abortSignal: signal })
          : client.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: first.url,
              Entries: entries.map((e) => ({ ...e, VisibilityTimeout: first.visibility }))
            }),
            { abortSignal: signal }
          )
      return Effect.tryPromise({
        try: send,
        catch: (error) => ackError(first.destination, error, first.visibility === undefined ? "DeleteMessageBatch" : "ChangeMessageVisibilityBatch")
      }).pipe(
        Effect.retry({ schedule: retrySchedule, while: (e) => Errors.isRetryableKind(e.reason._tag) }),
        Effect.matchEffect({
          onFailure: (error) => Effect.logWarning(`SQS: ${batch.length} settlements on ${first.destination} failed: ${error.reason.message}`),
          onSuccess: (response) =>
            Effect.forEach(response.Failed ?? [], (f) =>
              Effect.logDebug(
                `SQS: a settlement on ${first.destination} failed (${f.Code}): ${f.Message ?? ""}; the message comes back after its visibility timeout`
              ), { discard: true })
        }),
        Effect.ensuring(Effect.forEach(batch, (r) => {
          pending.delete(r.done)
          return Deferred.succeed(r.done, undefined)
        }, { discard: true }))
      )
    }

    const turn = Effect.gen(function*() {
      const taken = yield* Queue.takeBetween(requests, 1, 1000)
      const groups = new Map<string, Array<Request>>()
      for (const r of taken) {
        const key = groupKey(r)
        const group = groups.get(key)
        if (group === undefined) groups.set(key, [r])
        else group.push(r)
      }
      const batches = [...groups.values()].flatMap((g) => chunks(g, 10))
      yield* Effect.forEach(batches, call, { concurrency: 8, discard: true })
    })
    yield* Effect.forever(turn).pipe(Effect.forkScoped)
    yield* Effect.addFinalizer(() =>
      Effect.forEach([...pending], Deferred.await, { discard: true }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
    )


    const submit = (destination: string, url: string, handle: string, visibility: number | undefined) =>
      Effect.suspend(() => {
        const done = Deferred.makeUnsafe<void>()
        pending.add(done)
        return Effect.asVoid(Queue.offer(requests, { destination, url, handle, visibility, done }))
      })

    return {
      delete: (destination, url, handle) => submit(destination, url, handle, undefined),
      changeVisibility: (destination, url, handle, seconds) =>
        submit(destination, url, handle, Math.max(0, Math.min(maxVisibilitySeconds, Math.ceil(seconds))))
    }
  })
