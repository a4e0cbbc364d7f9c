/**
 * Error classification, once, at each adapter's edge: a client's failure becomes a {@link Errors.Reason}
 * whose tag comes from the client's error code (an adapter's `kindOf`), whose `message` keeps the broker's own
 * words and whose `code` keeps the client's code. The same two helpers read every client's errors.
 *
 * @since 0.3.0
 */
import { Predicate } from "effect"
import { AckError, ConnectionError, type ErrorKind, PublishError, type Reason, reason, SubscribeError } from "../Errors.ts"

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

/**
 * A public field of a thrown value (`code`, `cause`, `name`…), read through a type guard.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * BrokerErrors.field({ code: 42 }, "code") // 42
 * ```
 * @since 0.4.0
 */
export const field = (value: unknown, name: string): unknown => Predicate.hasProperty(value, name) ? value[name] : undefined

/**
 * A string field of a thrown value, or `undefined`.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * BrokerErrors.stringField(new TypeError("x"), "name") // "TypeError"
 * ```
 * @since 0.4.0
 */
export const stringField = (value: unknown, name: string): string | undefined => {
  const v = field(value, name)
  return typeof v === "string" ? v : undefined
}

/**
 * The error and the ones it wraps, outermost first: every field named in `through` is followed (an array
 * field, e.g. an aggregate's `errors`, element by element), each value once, at most `maxDepth` levels deep.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * const inner = new Error("refused")
 * BrokerErrors.causeChain(new Error("send failed", { cause: inner })).length // 2
 * ```
 * @since 0.4.0
 */
export const causeChain = (
  error: unknown,
  through: ReadonlyArray<string> = ["cause"],
  maxDepth = 8
): ReadonlyArray<unknown> => {
  const out: Array<unknown> = []
  const visit = (e: unknown, depth: number): void => {
    if (e === undefined || e === null || depth > maxDepth || out.includes(e)) return
    out.push(e)
    for (const name of through) {
      const inner = field(e, name)
      if (Array.isArray(inner)) for (const each of inner) visit(each, depth + 1)
      else visit(inner, depth + 1)
    }
  }
  visit(error, 0)
  return out
}

/**
 * How one client's errors are read: its kind, its words and its code (defaults: {@link messageOf},
 * {@link codeOf}).
 *
 * @since 0.4.0
 */
export interface ClientErrors {
  readonly kindOf: (error: unknown) => ErrorKind
  readonly messageOf?: ((error: unknown) => string) | undefined
  readonly codeOf?: ((error: unknown) => string | number | undefined) | undefined
}

/**
 * The classifier of a client whose reasons say what was being done: `reasonOf(error, "XADD")` is the reason
 * with message `"XADD: <the broker's words>"`.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * const reasonOf = BrokerErrors.contextual({ kindOf: () => "Unreachable" })
 * reasonOf(new Error("connect ECONNREFUSED"), "SendMessage").message // "SendMessage: connect ECONNREFUSED"
 * ```
 * @category constructors
 * @since 0.4.0
 */
export const contextual = (client: ClientErrors) => (error: unknown, context?: string): Reason => {
  const message = (client.messageOf ?? messageOf)(error)
  return reason(
    client.kindOf(error),
    context === undefined ? message : `${context}: ${message}`,
    (client.codeOf ?? codeOf)(error)
  )
}

/**
 * The four errors an adapter raises, each with its classified reason and the client's error as `cause`.
 *
 * @since 0.4.0
 */
export interface Constructors {
  readonly publishError: (destination: string, cause: unknown, context?: string) => PublishError
  readonly subscribeError: (destination: string, cause: unknown, context?: string) => SubscribeError
  readonly ackError: (destination: string, cause: unknown, context?: string) => AckError
  readonly connectionError: (broker: string, cause: unknown, context?: string) => ConnectionError
}

/**
 * The error constructors of one adapter over its `reasonOf` (see {@link contextual}), so that no adapter
 * writes its own.
 *
 * @example
 * ```ts
 * import { BrokerErrors } from "@switchyard/core/adapter"
 * const errors = BrokerErrors.constructors(BrokerErrors.contextual({ kindOf: () => "Unknown" }))
 * errors.publishError("orders", new Error("refused"), "send").reason.message // "send: refused"
 * ```
 * @category constructors
 * @since 0.4.0
 */
export const constructors = (reasonOf: (cause: unknown, context?: string) => Reason): Constructors => ({
  publishError: (destination, cause, context) => new PublishError({ destination, reason: reasonOf(cause, context), cause }),
  subscribeError: (destination, cause, context) => new SubscribeError({ destination, reason: reasonOf(cause, context), cause }),
  ackError: (destination, cause, context) => new AckError({ destination, reason: reasonOf(cause, context), cause }),
  connectionError: (broker, cause, context) => new ConnectionError({ broker, reason: reasonOf(cause, context), cause })
})
