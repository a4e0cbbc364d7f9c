/**
 * Error classification, once, at each adapter's edge: a client's failure becomes a {@link Errors.Reason}
 * whose tag comes from the client's error code (an adapter's `kindOf`), whose `message` keeps the broker's own
 * words and whose `code` keeps the client's code. The same two helpers read every client's errors.
 *
 * @since 0.3.0
 */
import { Predicate } from "effect"
import { type ErrorKind, type Reason, reason } from "../Errors.ts"

/**
 * The text of any thrown value: an `Error`'s message (its name when the message is empty), else `String(value)`.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * BrokerErrors.messageOf(new Error("PRECONDITION_FAILED")) // "PRECONDITION_FAILED"
 * BrokerErrors.messageOf("plain") // "plain"
 * ```
 * @since 0.3.0
 */
export const messageOf = (error: unknown): string =>
  error instanceof Error ? (error.message === "" ? error.name : error.message) : String(error)

/**
 * The `code` a client put on an error (an AMQP reply code, an errno string, a NATS or Kafka error code), when
 * it is a string or a number.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * BrokerErrors.codeOf(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })) // "ECONNREFUSED"
 * ```
 * @since 0.3.0
 */
export const codeOf = (error: unknown): string | number | undefined =>
  Predicate.hasProperty(error, "code") && (typeof error.code === "string" || typeof error.code === "number")
    ? error.code
    : undefined

/**
 * Builds the classifier of one client: `kindOf` reads the client's codes; the result keeps the message and
 * the code.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * const reasonOf = BrokerErrors.classifier((error) => BrokerErrors.codeOf(error) === "ECONNREFUSED" ? "Unreachable" : "Unknown")
 * reasonOf(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))._tag // "Unreachable"
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const classifier = (kindOf: (error: unknown) => ErrorKind) => (error: unknown, message?: string): Reason =>
  reason(kindOf(error), message ?? messageOf(error), codeOf(error))
