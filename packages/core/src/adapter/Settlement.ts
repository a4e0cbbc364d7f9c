/**
 * Settle-once deliveries: the one place where a delivery's `ack` / `nack` decide what reaches the broker.
 * The first settlement runs; every later one is a no-op (never a double ack); a settlement on a handle that
 * is no longer live (an AMQP channel that closed, a consumer that was replaced) fails with a typed
 * `AckError` of reason `BrokerClosed` and sends nothing: the broker redelivers the message.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import type { NackOptions, RawDelivery } from "../Broker.ts"
import { AckError, reason } from "../Errors.ts"

/**
 * How one delivery is settled at the broker.
 *
 * @since 0.3.0
 */
export interface Operations {
  readonly ack: Effect.Effect<void, AckError>
  readonly nack: (options: NackOptions | undefined) => Effect.Effect<void, AckError>
  /**
   * Whether the client handle that delivered the message is still the live one. When it is not, settling
   * sends nothing and fails with `BrokerClosed`. Absent: always live.
   */
  readonly isLive?: (() => boolean) | undefined
}

/**
 * A settle-once guard for one delivery. `run` runs the first operation given to it and ignores the rest.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Settlement } from "@switchyard/core/adapter"
 * const once = new Settlement.Once("orders")
 * const program = Effect.gen(function*() {
 *   yield* once.run(Effect.log("acked"))
 *   yield* once.run(Effect.log("never printed"))
 *   return once.settled // true
 * })
 * ```
 * @category constructors
 * @since 0.3.0
 */
export class Once {
  #settled = false

  constructor(
    readonly destination: string,
    private readonly isLive: () => boolean = alwaysLive
  ) {}

  /** Whether a settlement has been made (or refused as stale). */
  get settled(): boolean {
    return this.#settled
  }

  /** Runs `operation` if this is the first settlement; a later call is a no-op. */
  run(operation: Effect.Effect<void, AckError>): Effect.Effect<void, AckError> {
    return Effect.suspend(() => {
      if (this.#settled) return Effect.void
      this.#settled = true
      return this.isLive() ? operation : Effect.fail(staleSettlement(this.destination))
    })
  }
}

const alwaysLive = (): boolean => true

/**
 * The error of a settlement on a handle that is gone: nothing was sent, and the broker redelivers.
 *
 * @example
 * ```ts
 * import { Settlement } from "@switchyard/core/adapter"
 * Settlement.staleSettlement("orders").kind // "BrokerClosed"
 * ```
 * @since 0.3.0
 */
export const staleSettlement = (destination: string): AckError =>
  new AckError({
    destination,
    reason: reason(
      "BrokerClosed",
      "the connection or channel that delivered this message has closed; the broker will redeliver it"
    )
  })

/**
 * The settle-once `ack` and `nack` of a delivery, from the broker operations that settle it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Settlement } from "@switchyard/core/adapter"
 * const settle = Settlement.make("orders", {
 *   ack: Effect.log("basic.ack"),
 *   nack: () => Effect.log("basic.nack requeue")
 * })
 * const program = Effect.andThen(settle.ack, settle.nack()) // the nack is ignored
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const make = (
  destination: string,
  operations: Operations
): Pick<RawDelivery, "ack" | "nack"> & { readonly once: Once } => {
  const once = new Once(destination, operations.isLive)
  return {
    once,
    ack: once.run(operations.ack),
    nack: (options) => once.run(Effect.suspend(() => operations.nack(options)))
  }
}
