/**
 * The JetStream publish path: pipelined publishes (at most `publishWindow` awaiting their PubAck at once),
 * each resolved on its PubAck; the stream provisioned on first use, and provisioned again, once, when it was
 * deleted behind the adapter's back.
 */
import type { PubAck } from "@nats-io/jetstream"
import { type Envelope, Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"
import { Effect } from "effect"
import { exceedsMaxPayload, toHeaders } from "./envelope.ts"
import { isNoStream, publishReasonOf } from "./errors.ts"
import type { JetStreamContext } from "./subscription.ts"

type Outgoing = ReadonlyArray<Envelope.OutgoingMessage>

const windows = (messages: Outgoing, size: number): ReadonlyArray<{ readonly start: number; readonly batch: Outgoing }> =>
  Array.from({ length: Math.ceil(messages.length / size) }, (_, i) => ({
    start: i * size,
    batch: messages.slice(i * size, (i + 1) * size)
  }))

const failure = (ctx: JetStreamContext, destination: string, total: number, index: number, m: Envelope.OutgoingMessage, cause: unknown) =>
  new Errors.PublishError({
    destination,
    reason: publishReasonOf(
      cause,
      () => exceedsMaxPayload(ctx.nc, m),
      `message ${index + 1} of ${total} (${m.id}): ${BrokerErrors.messageOf(cause)}`
    ),
    cause
  })

/** Publishes one window and waits for every PubAck; fails with the first refused message. */
const publishWindow = (ctx: JetStreamContext, destination: string, total: number, start: number, batch: Outgoing) =>
  Effect.promise(() =>
    Promise.allSettled(batch.map((m) => ctx.client.publish(destination, m.payload, { headers: toHeaders(m) })))
  ).pipe(Effect.flatMap((settled) => {
    const refused = settled.findIndex((r) => r.status === "rejected")
    if (refused !== -1) {
      const r = settled[refused] as PromiseRejectedResult
      return Effect.fail(failure(ctx, destination, total, start + refused, batch[refused]!, r.reason))
    }
    return Effect.succeed(settled.map((r, i): Envelope.PublishReceipt => ({
      id: batch[i]!.id,
      coordinates: { destination, sequence: (r as PromiseFulfilledResult<PubAck>).value.seq }
    })))
  }))

const publishOnce = (ctx: JetStreamContext, destination: string, messages: Outgoing, window: number) =>
  ctx.streams.streamFor(destination).pipe(
    Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason, cause: e.cause })),
    Effect.andThen(Effect.forEach(
      windows(messages, window),
      ({ batch, start }) => publishWindow(ctx, destination, messages.length, start, batch)
    )),
    Effect.map((receipts) => receipts.flat())
  )

/** Publishes to JetStream; resolves with one receipt per message (its stream sequence). */
export const publish = (
  ctx: JetStreamContext,
  destination: string,
  messages: Outgoing,
  window: number
): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
  messages.length === 0 ? Effect.succeed([]) : publishOnce(ctx, destination, messages, window).pipe(
    // The stream was deleted behind our back (nobody answers on the subject): provision it again, once.
    Effect.catchIf(
      (e) => isNoStream(e.cause),
      () => Effect.andThen(ctx.streams.forget(destination), publishOnce(ctx, destination, messages, window))
    )
  )
