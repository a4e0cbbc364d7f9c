/**
 * The publish path: `SendMessageBatch` of up to 10 messages and at most 256 KiB per call (SQS's limits). On a
 * FIFO queue the calls of one publish are made one after the other (a group keeps its order across them); on
 * a standard queue, which keeps no order, up to 8 at once. A publish resolves
 * when SQS accepted every message; SQS answers per entry, so `publishEach` gives each message its own receipt
 * or error (a message over 256 KiB is refused before sending, reason `TooLarge`). A queue found missing (deleted
 * behind our back) is declared again and the call retried once.
 */
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry } from "@aws-sdk/client-sqs"
import { Errors } from "@switchyard/core"
import type { Envelope } from "@switchyard/core"
import { Effect, Result } from "effect"
import type { SqsConnectionShape } from "../SqsConnection.ts"
import type { QueueInfo, SqsTopologyShape } from "../SqsTopology.ts"
import { maxMessageBytes, toSqs } from "./envelope.ts"
import { entryError, publishError } from "./errors.ts"

type Outcome = Result.Result<Envelope.PublishReceipt, Errors.PublishError>

/** One `SendMessageBatch` call: the messages' positions in the publish and their entries. */
interface Chunk {
  readonly positions: ReadonlyArray<number>
  readonly entries: ReadonlyArray<Omit<SendMessageBatchRequestEntry, "Id">>
}

/** Groups the sendable messages into calls of at most 10 entries and 256 KiB. */
const chunksOf = (prepared: ReadonlyArray<{ readonly position: number; readonly entry: Chunk["entries"][number]; readonly bytes: number }>) => {
  const chunks: Array<Chunk> = []
  let positions: Array<number> = []
  let entries: Array<Chunk["entries"][number]> = []
  let bytes = 0
  for (const p of prepared) {
    if (entries.length === 10 || (entries.length > 0 && bytes + p.bytes > maxMessageBytes)) {
      chunks.push({ positions, entries })
      positions = []
      entries = []
      bytes = 0
    }
    positions.push(p.position)
    entries.push(p.entry)
    bytes += p.bytes
  }
  if (entries.length > 0) chunks.push({ positions, entries })
  return chunks
}

const tooLarge = (destination: string, bytes: number) =>
  new Errors.PublishError({
    destination,
    reason: Errors.reason("TooLarge", `the message is ${bytes} bytes with its attributes; SQS accepts at most ${maxMessageBytes}`)
  })

/** `SendMessageBatch` calls of one publish in flight at once, on a standard queue. */
const chunkConcurrency = 8

/** The publish operations of a broker. */
export const make = (connection: SqsConnectionShape, topology: SqsTopologyShape) => {
  const { client } = connection

  const sendChunk = (destination: string, info: QueueInfo, messages: ReadonlyArray<Envelope.OutgoingMessage>, chunk: Chunk) =>
    Effect.tryPromise({
      try: (signal) =>
        client.send(
          new SendMessageBatchCommand({
            QueueUrl: info.url,
            Entries: chunk.entries.map((entry, i) => ({ ...entry, Id: String(i) }))
          }),
          { abortSignal: signal }
        ),
      catch: (error) => publishError(destination, error, "SendMessageBatch")
    }).pipe(Effect.map((response): ReadonlyArray<readonly [number, Outcome]> => {
      const ok = new Map((response.Successful ?? []).map((s) => [s.Id, s]))
      const failed = new Map((response.Failed ?? []).map((f) => [f.Id, f]))
      return chunk.positions.map((position, i) => {
        const message = messages[position]!
        const success = ok.get(String(i))
        if (success !== undefined) {
          return [position, Result.succeed({ id: message.id, coordinates: { destination, offset: success.MessageId ?? "" } })]
        }
        const failure = failed.get(String(i))
        return [
          position,
          Result.fail(publishError(destination, entryError(failure?.Code, failure?.Message ?? "SQS did not answer for this message")))
        ]
      })
    }))

  /**
   * Sends every message and answers per message. With `stopAtFailure`, nothing is sent after a call that had a
   * failure (`publish`: the failed message and those after it fail).
   */
  const send = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>, stopAtFailure: boolean) =>
    Effect.gen(function*() {
      const outcomes: Array<Outcome | undefined> = messages.map(() => undefined)
      if (messages.length === 0) return []
      const info = yield* topology.queue(destination).pipe(Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason })))
      const prepared: Array<{ position: number; entry: Chunk["entries"][number]; bytes: number }> = []
      for (const [position, message] of messages.entries()) {
        const { entry, bytes } = toSqs(message, info.fifo)
        if (bytes > maxMessageBytes) outcomes[position] = Result.fail(tooLarge(destination, bytes))
        else prepared.push({ position, entry, bytes })
      }
      const firstRefused = outcomes.findIndex((o) => o !== undefined)
      const sendable = stopAtFailure && firstRefused >= 0 ? prepared.filter((p) => p.position < firstRefused) : prepared
      const chunks = chunksOf(sendable)
      if (info.fifo) {
        // one after the other: a group's order across calls, and nothing after a failure overtakes it
        for (const chunk of chunks) {
          const answered = yield* sendChunk(destination, info, messages, chunk)
          for (const [position, outcome] of answered) outcomes[position] = outcome
          if (stopAtFailure && answered.some(([, o]) => Result.isFailure(o))) break
        }
      } else {
        // a standard queue keeps no order: the calls of one publish go out together
        const answers = yield* Effect.forEach(chunks, (chunk) => sendChunk(destination, info, messages, chunk), {
          concurrency: chunkConcurrency
        })
        for (const answered of answers) for (const [position, outcome] of answered) outcomes[position] = outcome
      }
      return outcomes
    }).pipe(
      Effect.catchIf(
        (e) => e.reason._tag === "NotFound",
        (e) => Effect.andThen(topology.forget(destination), Effect.fail(e))
      ),
      Effect.retry({ times: 1, while: (e) => e.reason._tag === "NotFound" })
    )

  const notSent = (destination: string) =>
    new Errors.PublishError({ destination, reason: Errors.reason("Unknown", "not sent: an earlier message of the publish failed") })

  const publish = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>) =>
    Effect.flatMap(send(destination, messages, true), (outcomes) => {
      const receipts: Array<Envelope.PublishReceipt> = []
      for (const outcome of outcomes) {
        if (outcome === undefined) return Effect.fail(notSent(destination))
        if (Result.isFailure(outcome)) return Effect.fail(outcome.failure)
        receipts.push(outcome.success)
      }
      return Effect.succeed(receipts)
    })

  const publishEach = (destination: string, messages: ReadonlyArray<Envelope.OutgoingMessage>) =>
    Effect.map(send(destination, messages, false), (outcomes) => outcomes.map((o) => o ?? Result.fail(notSent(destination))))

  return { publish, publishEach }
}
