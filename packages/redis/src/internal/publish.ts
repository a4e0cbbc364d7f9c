/**
 * The publish path: one `XADD` per message with the envelope in its fields (`internal/envelope.ts`) and the
 * stream's retention as trim arguments, all of a batch sent in one synchronous loop on the shared client, so
 * node-redis writes them as one pipeline, in order. Each message's result is its own reply: `publishEach`
 * answers per message; `publish` fails at the first refused one (it and the ones after it fail).
 */
import { Effect, Result } from "effect"
import type { Envelope, Errors } from "@switchyard/core"
import type { RedisConnectionShape } from "../RedisConnection.ts"
import type { RedisTopologyShape } from "../RedisTopology.ts"
import { toFields } from "./envelope.ts"
import { publishError } from "./errors.ts"
import * as Replies from "./replies.ts"

type Each = ReadonlyArray<Result.Result<Envelope.PublishReceipt, Errors.PublishError>>

const send = (
  connection: RedisConnectionShape,
  destination: string,
  trim: ReadonlyArray<string>,
  messages: ReadonlyArray<Envelope.OutgoingMessage>
): Effect.Effect<Each> =>
  Effect.promise(() =>
    Promise.all(messages.map((message) =>
      connection.client.sendCommand<unknown>(["XADD", destination, ...trim, "*", ...toFields(message)]).then(
        (reply): Result.Result<Envelope.PublishReceipt, Errors.PublishError> => {
          const entryId = Replies.string(reply)
          return entryId === undefined
            ? Result.fail(publishError(destination, reply, "XADD answered no id"))
            : Result.succeed({ id: message.id, coordinates: { destination, offset: entryId } })
        },
        (cause: unknown) => Result.fail(publishError(destination, cause, "XADD"))
      )
    ))
  )

/** The publish operations of a broker. */
export const make = (connection: RedisConnectionShape, topology: RedisTopologyShape) => {
  const publishEach = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>): Effect.Effect<Each> =>
    messages.length === 0
      ? Effect.succeed([])
      : Effect.flatMap(topology.trimArgs(destination), (trim) => send(connection, destination, trim, messages))
  const publish = (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
    Effect.flatMap(publishEach(destination, messages), (results) => {
      const receipts: Array<Envelope.PublishReceipt> = []
      for (const result of results) {
        if (Result.isFailure(result)) return Effect.fail(result.failure)
        receipts.push(result.success)
      }
      return Effect.succeed(receipts)
    })
  return { publish, publishEach }
}
