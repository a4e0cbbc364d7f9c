/**
 * The core NATS publish path: messages written to the connection, then one PING/PONG round trip
 * (`flush`), which proves the server has read everything before it. nats.js refuses synchronously what
 * it cannot send (too large, bad subject): classified with the message at hand.
 */
import type { NatsConnection as RawConnection } from "@nats-io/transport-node"
import { type Envelope, Errors } from "@switchyard/core"
import { Effect, Result } from "effect"
import { exceedsMaxPayload, wireHeaders } from "./envelope.ts"
import { publishReasonOf } from "./errors.ts"

type Outgoing = ReadonlyArray<Envelope.OutgoingMessage>

const publishError = (nc: RawConnection, destination: string, m: Envelope.OutgoingMessage | undefined, cause: unknown) =>
  new Errors.PublishError({
    destination,
    reason: publishReasonOf(cause, () => m !== undefined && exceedsMaxPayload(nc, m)),
    cause
  })

/** Writes every message; the first one nats.js refuses, with why. */
const sendAll = (
  nc: RawConnection,
  destination: string,
  messages: Outgoing
): { readonly message: Envelope.OutgoingMessage; readonly cause: unknown } | undefined => {
  for (const m of messages) {
    const sent = Result.try(() => nc.publish(destination, m.payload, { headers: wireHeaders(m) }))
    if (Result.isFailure(sent)) return { message: m, cause: sent.failure }
  }
  return undefined
}

/** Publishes to core NATS; resolves once the server has read the messages. */
export const publish = (
  nc: RawConnection,
  destination: string,
  messages: Outgoing
): Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError> =>
  Effect.suspend(() => {
    const refused = sendAll(nc, destination, messages)
    if (refused !== undefined) return Effect.fail(publishError(nc, destination, refused.message, refused.cause))
    return Effect.tryPromise({
      try: () => nc.flush(),
      catch: (cause) => publishError(nc, destination, undefined, cause)
    }).pipe(Effect.as(messages.map((m): Envelope.PublishReceipt => ({ id: m.id, coordinates: { destination } }))))
  })
