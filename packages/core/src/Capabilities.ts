/**
 * What a broker can honestly promise. Shared tests (the conformance suite) and the consumer runtime read
 * these flags instead of knowing broker names.
 *
 * @since 0.1.0
 */

/**
 * Capability flags declared by every broker adapter.
 *
 * @example
 * ```ts
 * import { Capabilities } from "@switchyard/core"
 * const caps: Capabilities.Capabilities = { ...Capabilities.none, consumerGroups: true, persistent: true }
 * ```
 * @category models
 * @since 0.1.0
 */
export interface Capabilities {
  /** Several members of one group share the work; several groups each get every message. */
  readonly consumerGroups: boolean
  /** Messages with the same key are delivered in publish order to one member of a group. */
  readonly perKeyOrder: boolean
  /** One subscription sees messages in publish order, and an unacked message holds back the next one when prefetch is 1. */
  readonly orderedDelivery: boolean
  /** Published messages survive subscriber absence (and broker restart where it applies). */
  readonly persistent: boolean
  /** A nacked message is redelivered. */
  readonly redelivery: boolean
  /** `nack({ delay })` postpones the redelivery by the requested time. */
  readonly redeliveryDelay: boolean
  /** A new consumer group reads messages published before it subscribed. */
  readonly replayForNewSubscribers: boolean
  /** The broker deduplicates or transacts so that each message is processed exactly once. */
  readonly exactlyOnce: boolean
  /** Delivery is at most once (no acks); nothing is redelivered after a crash. */
  readonly atMostOnce: boolean
}

/**
 * All flags off; spread it and switch on what a broker has.
 *
 * @category constructors
 * @since 0.1.0
 */
export const none: Capabilities = {
  consumerGroups: false,
  perKeyOrder: false,
  orderedDelivery: false,
  persistent: false,
  redelivery: false,
  redeliveryDelay: false,
  replayForNewSubscribers: false,
  exactlyOnce: false,
  atMostOnce: false
}
