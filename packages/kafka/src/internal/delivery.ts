/**
 * Where a Kafka delivery gets settled: `Settlement.make` with ack/nack that only enqueue a command for the
 * runloop (which owns the offset tracker). A settlement on a revoked partition (its assignment epoch is no
 * longer current) sends nothing and fails with `AckError` reason `BrokerClosed`: the new owner gets the
 * record from the committed offset.
 */
import { Duration, Effect } from "effect"
import type { Broker, Envelope } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"
import type { RawRecord } from "./envelope.ts"

/** A fetched record waiting to be handed out, with the attempt it is delivered as. */
export interface Pending {
  readonly message: RawRecord
  readonly offset: number
  readonly attempt: number
}

/** How a delivery was settled. */
export type Outcome =
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Nack"; readonly delay: Duration.Duration | undefined }

/** A delivery with where it came from (the partition and the assignment epoch it was handed out in). */
export interface KafkaDelivery extends Broker.RawDelivery {
  readonly partition: number
  readonly epoch: number
  readonly pending: Pending
  readonly once: Settlement.Once
}

/** What a delivery needs from the runloop. */
export interface Handlers {
  readonly settle: (partition: number, epoch: number, pending: Pending, outcome: Outcome) => Effect.Effect<void>
  readonly isLive: (partition: number, epoch: number) => boolean
}

const outcomeOf = (options: Broker.NackOptions | undefined): Outcome => {
  const delay = options?.delay === undefined ? undefined : Duration.fromInputUnsafe(options.delay)
  return { _tag: "Nack", delay: delay === undefined || Duration.isZero(delay) ? undefined : delay }
}

/** A delivery of `pending` from `partition` in assignment `epoch`. */
export const make = (
  destination: string,
  partition: number,
  epoch: number,
  pending: Pending,
  envelope: Envelope.Envelope,
  handlers: Handlers
): KafkaDelivery => {
  const settled = Settlement.make(destination, {
    ack: Effect.suspend(() => handlers.settle(partition, epoch, pending, { _tag: "Ack" })),
    nack: (options) => Effect.suspend(() => handlers.settle(partition, epoch, pending, outcomeOf(options))),
    isLive: () => handlers.isLive(partition, epoch)
  })
  return { envelope, ack: settled.ack, nack: settled.nack, partition, epoch, pending, once: settled.once }
}

/** Marks a delivery settled without telling anyone (it was taken back: never handed to a reader). */
export const abandon = (delivery: KafkaDelivery): Effect.Effect<void> => Effect.ignore(delivery.once.run(Effect.void))
