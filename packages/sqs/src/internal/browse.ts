/**
 * `Broker.browse` (dead-letter operations) on an SQS queue: an SQS queue keeps its messages until they are
 * deleted, so a parking queue can be read as an operator. The read counts the queue's visible messages at
 * opening (`retained`), then receives them in pages of up to 10 with a long visibility timeout (10 minutes), so
 * that one read does not see a message twice, and ends once it delivered `retained` messages or a receive came
 * back empty. `ack` deletes the message for good; `nack`, or closing the read with messages unsettled, makes
 * them visible again at once. Messages other readers hold (in flight) are not part of the read.
 */
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs"
import { Errors } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import { Clock, Effect, Option, type Scope, Stream } from "effect"
import type { SqsConnectionShape } from "../SqsConnection.ts"
import type { SqsTopologyShape } from "../SqsTopology.ts"
import * as Delivery from "./delivery.ts"
import { fromSqs } from "./envelope.ts"
import { subscribeError } from "./errors.ts"
import type { Settler } from "./settler.ts"

const holdSeconds = 600

/** The browse operation of a broker. */
export const browse = (connection: SqsConnectionShape, topology: SqsTopologyShape, settler: Settler) =>
(destination: string, options: Broker.BrowseOptions): Effect.Effect<Broker.Browse, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const toSubscribeError = (e: { readonly reason: Errors.Reason }) => new Errors.SubscribeError({ destination, reason: e.reason })
    const info = yield* topology.queue(destination).pipe(Effect.mapError(toSubscribeError))
    const retained = (yield* topology.counts(destination).pipe(Effect.mapError(toSubscribeError))).visible
    const clock = yield* Clock.Clock
    const held = new Set<string>()
    const release = (handle: string) =>
      Effect.suspend(() => {
        held.delete(handle)
        return settler.changeVisibility(destination, info.url, handle, 0)
      })
    const handlers: Delivery.Handlers = {
      ack: (handle) => Effect.suspend(() => {
        held.delete(handle)
        return settler.delete(destination, info.url, handle)
      }),
      nack: (handle, seconds) => Effect.suspend(() => {
        held.delete(handle)
        return settler.changeVisibility(destination, info.url, handle, seconds)
      }),
      isLive: (handle) => held.has(handle)
    }
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.forEach([...held], release, { concurrency: "unbounded", discard: true })))

    const page = (delivered: number) =>
      Effect.tryPromise({
        try: (signal) =>
          connection.client.send(
            new ReceiveMessageCommand({
              QueueUrl: info.url,
              MaxNumberOfMessages: Math.max(1, Math.min(10, options.prefetch, retained - delivered)),
              WaitTimeSeconds: 1,
              VisibilityTimeout: holdSeconds,
              MessageAttributeNames: ["All"],
              MessageSystemAttributeNames: ["All"]
            }),
            { abortSignal: signal }
          ),
        catch: (error) => subscribeError(destination, error, "ReceiveMessage")
      }).pipe(Effect.map((response) => {
        const messages = response.Messages ?? []
        const deliveries = messages.flatMap((message) => {
          const handle = message.ReceiptHandle
          if (handle === undefined) return []
          held.add(handle)
          const envelope = fromSqs(destination, message, () => clock.currentTimeMillisUnsafe())
          return [Delivery.make(destination, handle, envelope, undefined, handlers)]
        })
        const next = delivered + deliveries.length
        return [deliveries, deliveries.length === 0 || next >= retained ? Option.none() : Option.some(next)] as const
      }))

    const deliveries = retained === 0 ? Stream.empty : Stream.paginate(0, page)
    return { deliveries, retained }
  })
