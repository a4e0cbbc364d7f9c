/**
 * Replay of a JetStream destination with an ordered consumer (no acks, no durable state): what
 * `NatsBroker.replay` reads. Ends once caught up unless `live`.
 */
import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream"
import type { Envelope, Errors } from "@switchyard/core"
import { Effect, Queue, Stream } from "effect"
import { envelopeOf } from "./delivery.ts"
import { subscribeError } from "./errors.ts"
import type { BrowseContext } from "./browse.ts"

/** Options of a replay. */
export interface ReplayOptions {
  readonly fromSequence?: number | undefined
  readonly live?: boolean | undefined
}

const deliverFrom = (fromSequence: number | undefined) =>
  fromSequence !== undefined
    ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSequence }
    : { deliver_policy: DeliverPolicy.All }

const consumeInto = (
  ctx: BrowseContext & { readonly streamFor: (destination: string) => Effect.Effect<string, Errors.SubscribeError> },
  stream: string,
  destination: string,
  o: ReplayOptions,
  lastSeq: number
) =>
  Stream.callback<Envelope.Envelope, Errors.SubscribeError>((queue) => {
    const onMessage = (m: JsMsg): void => {
      Queue.offerUnsafe(queue, envelopeOf(destination, m, m.info.deliveryCount, ctx.now))
      if (o.live !== true && (m.info.pending === 0 || m.seq >= lastSeq)) Queue.endUnsafe(queue)
    }
    return Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          ctx.client.consumers.get(stream, { filter_subjects: destination, ...deliverFrom(o.fromSequence) })
            .then((consumer) => consumer.consume({ callback: onMessage })),
        catch: subscribeError(destination, "replay")
      }),
      (messages) => Effect.promise(() => messages.close().then(() => undefined, () => undefined))
    )
  })

/** Replays a destination (see `NatsBroker.replay`). */
export const replay = (
  ctx: BrowseContext & { readonly streamFor: (destination: string) => Effect.Effect<string, Errors.SubscribeError> },
  destination: string,
  o: ReplayOptions = {}
): Stream.Stream<Envelope.Envelope, Errors.SubscribeError> =>
  Stream.unwrap(Effect.gen(function*() {
    const stream = yield* ctx.streamFor(destination)
    const state = yield* Effect.tryPromise({
      try: () => ctx.manager.streams.info(stream, { subjects_filter: destination }),
      catch: subscribeError(destination, `stream ${stream}`)
    })
    const lastSeq = state.state.last_seq
    const nothing = state.state.messages === 0 || (o.fromSequence !== undefined && o.fromSequence > lastSeq)
    return o.live !== true && nothing ? Stream.empty : consumeInto(ctx, stream, destination, o, lastSeq)
  }))
