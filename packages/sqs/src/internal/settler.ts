/**
 * Settle calls batched per turn: acks become `DeleteMessageBatch`, nacks, releases and visibility extensions
 * `ChangeMessageVisibilityBatch`. Requests are queued; one fiber takes everything queued at once, groups it per
 * queue (and visibility), sends batches of 10 concurrently, and completes each request with its own entry's
 * outcome. Calls that fail for a retryable reason (the endpoint restarting) are retried briefly: a receipt
 * handle stays valid while its message is invisible.
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
  readonly done: Deferred.Deferred<void, Errors.AckError>
}

/** The batched settle calls of a broker. */
export interface Settler {
  /** Deletes a received message (ack). */
  readonly delete: (destination: string, url: string, handle: string) => Effect.Effect<void, Errors.AckError>
  /** Sets a received message's visibility timeout (0: visible again now). */
  readonly changeVisibility: (
    destination: string,
    url: string,
    handle: string,
    seconds: number
  ) => Effect.Effect<void, Errors.AckError>
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
          onFailure: (error) => Effect.forEach(batch, (r) => Deferred.fail(r.done, error), { discard: true }),
          onSuccess: (response) => {
            const failed = new Map((response.Failed ?? []).map((f) => [f.Id, f]))
            return Effect.forEach(batch, (r, i) => {
              const failure = failed.get(String(i))
              return failure === undefined
                ? Deferred.succeed(r.done, undefined)
                : Deferred.fail(r.done, ackError(r.destination, { name: failure.Code, message: failure.Message ?? failure.Code }))
            }, { discard: true })
          }
        })
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

    const submit = (destination: string, url: string, handle: string, visibility: number | undefined) =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<void, Errors.AckError>()
        yield* Queue.offer(requests, { destination, url, handle, visibility, done })
        return yield* Deferred.await(done)
      })

    return {
      delete: (destination, url, handle) => submit(destination, url, handle, undefined),
      changeVisibility: (destination, url, handle, seconds) =>
        submit(destination, url, handle, Math.max(0, Math.min(maxVisibilitySeconds, Math.ceil(seconds))))
    }
  })
