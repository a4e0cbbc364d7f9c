/**
 * Where a core NATS delivery gets settled: at most once, so `ack` and `nack` send nothing; they still go
 * through the kit's `Settlement.make`, so only the first one counts, as on every broker.
 */
import type { Msg } from "@nats-io/transport-node"
import type { Broker, Envelope, Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import { Effect } from "effect"
import { fromMessage } from "./envelope.ts"

const atMostOnce: Settlement.Operations = { ack: Effect.void, nack: () => Effect.void }

/** One core NATS delivery; the envelope is read on first access. */
export class CoreDelivery implements Broker.RawDelivery {
  #envelope: Envelope.Envelope | undefined
  readonly ack: Effect.Effect<void, Errors.AckError>
  readonly nack: (options?: Broker.NackOptions) => Effect.Effect<void, Errors.AckError>
  constructor(readonly message: Msg, readonly now: () => number) {
    const settle = Settlement.make(message.subject, atMostOnce)
    this.ack = settle.ack
    this.nack = settle.nack
  }
  get envelope(): Envelope.Envelope {
    if (this.#envelope === undefined) {
      this.#envelope = fromMessage(this.message, { attempt: 1, coordinates: { destination: this.message.subject } }, this.now)
    }
    return this.#envelope
  }
}

