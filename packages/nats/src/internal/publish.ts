/**
 * The JetStream publish path: pipelined publishes (at most `publishWindow` awaiting their PubAck at once),
 * each resolved on its PubAck (and told to `onConfirmed` then); the stream provisioned on first use, and
 * provisioned again, once, when it was deleted behind the adapter's back.
 */
import type { PubAck } from "@nats-io/jetstream"
import { type Broker, type Envelope, Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"
import type { MsgHdrs } from "@nats-io/transport-node"
import { Effect, Result } from "effect"
import { exceedsMaxPayload, wireHeaders } from "./envelope.ts"
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

const receiptOf = (destination: string, m: Envelope.OutgoingMessage, ack: PubAck): Envelope.PublishReceipt => ({
  id: m.id,
  coordinates: { destination, sequence: ack.seq }
})

/**
 * Publishes one window and waits for every PubAck; fails with the first refused message. `onConfirmed` hears
 * of each PubAck as it arrives.
 */
const publishWindow = (
  ctx: JetStreamContext,
  destination: string,
  total: number,
  start: number,
  batch: Outgoing,
  onConfirmed: Broker.OnConfirmed | undefined
) =>
  Effect.suspend(() => {
    // Built before the first publish: a header nats.js refuses (it throws) fails the window as a typed
    // error, with nothing of it sent, instead of escaping the promise as a defect.
    const headers: Array<MsgHdrs> = []
    for (let i = 0; i < batch.length; i++) {
      const built = Result.try(() => wireHeaders(batch[i]!))
      if (Result.isFailure(built)) return Effect.fail(failure(ctx, destination, total, start + i, batch[i]!, built.failure))
      headers.push(built.success)
    }
    return publishBuilt(ctx, destination, total, start, batch, headers, onConfirmed)
  })

/** Publishes one window whose headers are built; every PubAck awaited, the first refusal failing it. */
const publishBuilt = (
  ctx: JetStreamContext,
  destination: string,
  total: number,
  start: number,
  batch: Outgoing,
  headers: ReadonlyArray<MsgHdrs>,
  onConfirmed: Broker.OnConfirmed | undefined
) =>
  Effect.promise(() =>
    Promise.allSettled(batch.map((m, i) => {
      const acked = ctx.client.publish(destination, m.payload, { headers: headers[i]! })
      return onConfirmed === undefined ? acked : acked.then((ack) => {
        onConfirmed(start + i, receiptOf(destination, m, ack))
        return ack
      })
    }))
  ).pipe(Effect.flatMap((settled) => {
    const refused = settled.findIndex((r) => r.status === "rejected")
    if (refused !== -1) {
      const r = settled[refused] as PromiseRejectedResult
      return Effect.fail(failure(ctx, destination, total, start + refused, batch[refused]!, r.reason))
    }
    return Effect.succeed(settled.map((r, i) => receiptOf(destination, batch[i]!, (r as PromiseFulfilledResult<PubAck>).value)))
  }))

const publishOnce = (
  ctx: JetStreamContext,
  destination: string,
  messages: Outgoing,
  window: number,
  onConfirmed: Broker.OnConfirmed | undefined
) =>
  ctx.streams.streamFor(destination).pipe(
    Effect.mapError((e) => new Errors.PublishError({ destination, reason: e.reason, cause: e.cause })),
    Effect.andThen(Effect.forEach(
      windows(messages, window),
      ({ batch, start }) => publishWindow(ctx, destination, messages.length, start, batch, onConfirmed)
    )),
    Effect.map((receipts) => receipts.flat())
  )

/** Publishes to JetStream; resolves with one receipt per message (its stream sequence). */
export const publish = (
  ctx: JetStreamContext,
  destination: string,
  messages: Outgoing,
  window: number,
  onConfirmed?: Broker.OnConfirmed
): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
  messages.length === 0 ? Effect.succeed([]) : publishOnce(ctx, destination, messages, window, onConfirmed).pipe(
    // The stream was deleted behind our back (nobody answers on the subject): provision it again, once.
    Effect.catchIf(
      (e) => isNoStream(e.cause),
      () => Effect.andThen(ctx.streams.forget(destination), publishOnce(ctx, destination, messages, window, onConfirmed))
    )
  )
