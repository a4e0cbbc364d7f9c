/**
 * A delivery's settlement (`Settlement.make`, settle-once) as stream-group commands on the shared client:
 *
 * - `ack` = `XACK` (node-redis pipelines the acks of one turn into one write);
 * - `nack()` = the entry stays pending and is marked idle past the ack deadline (`XCLAIM … IDLE … JUSTID`,
 *   which does not count a delivery): any member's next `XAUTOCLAIM` takes it, with its delivery count + 1;
 * - `nack({ delay })` = the same with the idle time set so that it becomes claimable after `delay` (capped at
 *   the ack deadline). The entry keeps its id and its place: nothing is re-added, nothing can be lost in
 *   between (a crash leaves it pending, claimable after the ack deadline).
 */
import { Duration, Effect } from "effect"
import type { Broker, Envelope, Errors } from "@switchyard/core"
import { Settlement } from "@switchyard/core/adapter"

/** What a delivery settles through (the subscription's commands). */
export interface Handlers {
  readonly ack: (entryId: string) => Effect.Effect<void, Errors.AckError>
  /** Marks the entry claimable after `after` milliseconds (0: at once). */
  readonly release: (entryId: string, afterMillis: number) => Effect.Effect<void, Errors.AckError>
  readonly ackDeadlineMillis: number
  readonly deliveryLimit: number | undefined
}

/** A delivery with its entry id. */
export interface RedisDelivery extends Broker.RawDelivery {
  readonly entryId: string
}

const delayMillis = (options: Broker.NackOptions | undefined, cap: number): number => {
  if (options?.delay === undefined) return 0
  return Math.min(cap, Math.max(0, Duration.toMillis(Duration.fromInputUnsafe(options.delay))))
}

/** A delivery of an entry. */
export const make = (
  destination: string,
  entryId: string,
  envelope: Envelope.Envelope,
  handlers: Handlers
): RedisDelivery => {
  const settled = Settlement.make(destination, {
    ack: Effect.suspend(() => handlers.ack(entryId)),
    nack: (options) => handlers.release(entryId, delayMillis(options, handlers.ackDeadlineMillis))
  })
  return { envelope, entryId, ack: settled.ack, nack: settled.nack, deliveryLimit: handlers.deliveryLimit }
}
