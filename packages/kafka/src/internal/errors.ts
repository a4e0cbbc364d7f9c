/**
 * Classification of kafkajs failures into core's `Errors.Reason`, once, at the adapter's edge: from kafkajs's
 * error classes (`name`), the Kafka protocol error `type` (`KafkaJSProtocolError`), Node's socket `code`s,
 * never from message text. The reason keeps the broker's own words and the Kafka error code name.
 */
import { Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"

import { Predicate, Schema } from "effect"

const { field, stringField } = BrokerErrors

type ErrorKind = Errors.ErrorKind

export const byProtocolType: Readonly<Record<string, ErrorKind>> = {
  MESSAGE_TOO_LARGE: "TooLarge",
  RECORD_LIST_TOO_LARGE: "TooLarge",
  OFFSET_METADATA_TOO_LARGE: "TooLarge",
  INVALID_RECORD: "Invalid",
  CORRUPT_MESSAGE: "Invalid",
  INVALID_TIMESTAMP: "Invalid",
  INVALID_TOPIC_EXCEPTION: "Invalid",
  INVALID_REQUIRED_ACKS: "Invalid",
  INVALID_PARTITIONS: "Invalid",
  INVALID_REPLICATION_FACTOR: "Invalid",
  INVALID_CONFIG: "Invalid",
  GROUP_ID_NOT_FOUND: "NotFound",
  TOPIC_ALREADY_EXISTS: "TopologyConflict",
  SASL_AUTHENTICATION_FAILED: "AuthenticationFailed",
  ILLEGAL_SASL_STATE: "AuthenticationFailed",
  UNSUPPORTED_SASL_MECHANISM: "AuthenticationFailed",
  TOPIC_AUTHORIZATION_FAILED: "AuthorizationFailed",
  GROUP_AUTHORIZATION_FAILED: "AuthorizationFailed",
  CLUSTER_AUTHORIZATION_FAILED: "AuthorizationFailed",
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "AuthorizationFailed",
  DELEGATION_TOKEN_AUTHORIZATION_FAILED: "AuthorizationFailed",
  REQUEST_TIMED_OUT: "Timeout"
}

const byClassName: Readonly<Record<string, ErrorKind>> = {
  KafkaJSSASLAuthenticationError: "AuthenticationFailed",
  KafkaJSConnectionError: "Unreachable",
  KafkaJSConnectionClosedError: "BrokerClosed",
  KafkaJSBrokerNotFound: "Unreachable",
  KafkaJSNoBrokerAvailableError: "Unreachable",
  KafkaJSRequestTimeoutError: "Timeout",
  KafkaJSTimeout: "Timeout",
  KafkaJSLockTimeout: "Timeout"
}

/** Node socket errors that mean "nobody answered there". */
export const unreachableCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNRESET"])


/** The error and the ones it wraps (kafkajs `cause`/`originalError`, `KafkaJSAggregateError.errors`). */
export const chain = (error: unknown): ReadonlyArray<unknown> => BrokerErrors.causeChain(error, ["cause", "originalError", "errors"])

const isErrorKind = Schema.is(Errors.ErrorKind)

const kindOfOne = (error: unknown): ErrorKind | undefined => {
  // our own errors (KafkaTopologyError, core's errors) already carry a reason
  const own = field(error, "reason")
  if (Predicate.hasProperty(own, "_tag") && isErrorKind(own._tag)) return own._tag
  const type = stringField(error, "type")
  if (type !== undefined && byProtocolType[type] !== undefined) return byProtocolType[type]
  const name = stringField(error, "name")
  if (name !== undefined && byClassName[name] !== undefined) return byClassName[name]
  const code = stringField(error, "code")
  if (code !== undefined && unreachableCodes.has(code)) return "Unreachable"
  // kafkajs's encoders throw plain TypeError/RangeError for values they cannot write (client-side, final)
  if (error instanceof TypeError || error instanceof RangeError) return "Invalid"
  return undefined
}

/** Non-retryable kinds win over retryable ones found deeper in the chain (a retry gave up on a final error); shared with the @platformatic/kafka backend. */
export const precedence: ReadonlyArray<ErrorKind> = [
  "AuthenticationFailed",
  "AuthorizationFailed",
  "TooLarge",
  "Invalid",
  "NotFound",
  "TopologyConflict",
  "Unreachable",
  "BrokerClosed",
  "Timeout"
]

/** The kind of a kafkajs failure (`Unknown` when nothing in it is recognised). */
export const kindOf = (error: unknown): ErrorKind => {
  const found = new Set<ErrorKind>()
  for (const e of chain(error)) {
    const kind = kindOfOne(e)
    if (kind !== undefined) found.add(kind)
  }
  return precedence.find((kind) => found.has(kind)) ?? "Unknown"
}

/** The broker's own words: each distinct message in the chain, outermost first. */
export const messageOf = (error: unknown): string => {
  const parts: Array<string> = []
  for (const e of chain(error)) {
    const own = field(e, "reason")
    const message = Predicate.hasProperty(own, "message") && typeof own.message === "string"
      ? own.message
      : e instanceof Error
      ? e.message
      : typeof e === "string"
      ? e
      : undefined
    if (message !== undefined && message !== "" && !parts.some((p) => p.includes(message))) parts.push(message)
  }
  return parts.length === 0 ? BrokerErrors.messageOf(error) : parts.join(": ")
}

/** The client's code: the Kafka error code name (`type`) first, else a reason's or a socket's code. */
export const codeOf = (error: unknown): string | number | undefined => {
  const errors = chain(error)
  for (const e of errors) {
    const type = stringField(e, "type")
    if (type !== undefined) return type
  }
  for (const e of errors) {
    const own = field(e, "reason")
    const code = BrokerErrors.codeOf(own) ?? BrokerErrors.codeOf(e)
    if (code !== undefined) return code
  }
  return undefined
}

/** The `Errors.Reason` of a kafkajs failure, `context` (what was being done) in front of the broker's words. */
export const reasonOf: (error: unknown, context?: string) => Errors.Reason = BrokerErrors.contextual({ kindOf, messageOf, codeOf })

export const { ackError, connectionError, publishError, subscribeError } = BrokerErrors.constructors(reasonOf)
