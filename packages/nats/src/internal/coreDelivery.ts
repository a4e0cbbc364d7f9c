/**
 * Where a core NATS delivery gets settled: at most once, so `ack` and `nack` send nothing. With nothing to
 * send there is nothing to settle twice, so every delivery shares the same two no-op effects (no
 * `Settlement` per message on the hot path).
 */
import type { Msg } from "@nats-io/transport-node"
import type { Broker, Envelope, Errors } from "@switchyard/core"
import { Effect } from "effect"
import { fromMessage } from "./envelope.ts"

const sendNothing: Effect.Effect<void, Errors.AckError> = Effect.void
const nackNothing = (): Effect.Effect<void, Errors.AckError> => sendNothing

/** One core NATS delivery; the envelope is read on first access. */
export class CoreDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  readonly ack: Effect.Effect<void, Errors.AckError> = sendNothing
  readonly nack: (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError> = nackNothing
  constructor(readonly message: Msg, readonly now: () => number) {}
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      this.#envelope = fromMessage(this.message, { attempt: 1, coordinates: { destination: this.message.subject } }, this.now)
    }
    return this.#envelope
  }
}

