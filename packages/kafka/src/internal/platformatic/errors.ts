/**
 * Classification of @platformatic/kafka failures into core's `Errors.Reason`, at the backend's edge, like
 * `../errors.ts` does for kafkajs: from the Kafka protocol error id (`apiId` of a `ProtocolError`, the same
 * names as kafkajs's `type`, so the table is shared), the client's `PLT_KFK_*` codes and Node's socket codes;
 * never from message text. `MultipleErrors` (`errors`) and `cause` are walked; the most final kind wins.
 */
import { Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"
import { TimeoutError } from "@platformatic/kafka"
import { Predicate, Schema } from "effect"
import { byProtocolType, messageOf, precedence, unreachableCodes } from "../errors.ts"

const { field, stringField } = BrokerErrors

type ErrorKind = Errors.ErrorKind

/** The client's own error codes (`GenericError.code`). */
const byClientCode: Readonly<Record<string, ErrorKind>> = {
  PLT_KFK_AUTHENTICATION: "AuthenticationFailed",
  PLT_KFK_NETWORK: "Unreachable",
  PLT_KFK_TIMEOUT: "Timeout",
  PLT_KFK_USER: "Invalid",
  PLT_KFK_OUT_OF_BOUNDS: "Invalid",
  PLT_KFK_UNSUPPORTED_COMPRESSION: "Invalid",
  PLT_KFK_UNSUPPORTED_FORMAT: "Invalid"
}

/** The error and the ones it wraps (`cause`, `MultipleErrors.errors`). */
export const chain = (error: unknown): ReadonlyArray<unknown> => BrokerErrors.causeChain(error, ["cause", "errors"])

const isErrorKind = Schema.is(Errors.ErrorKind)

const kindOfOne = (error: unknown): ErrorKind | undefined => {
  const own = field(error, "reason")
  if (Predicate.hasProperty(own, "_tag") && isErrorKind(own._tag)) return own._tag
  const apiId = stringField(error, "apiId")
  if (apiId !== undefined && byProtocolType[apiId] !== undefined) return byProtocolType[apiId]
  // the client gives its TimeoutError the network code
  if (error instanceof TimeoutError) return "Timeout"
  const code = stringField(error, "code")
  if (code !== undefined && byClientCode[code] !== undefined) return byClientCode[code]
  if (code !== undefined && unreachableCodes.has(code)) return "Unreachable"
  return undefined
}

/** The kind of a @platformatic/kafka failure (`Unknown` when nothing in it is recognised). */
export const kindOf = (error: unknown): ErrorKind => {
  const found = new Set<ErrorKind>()
  for (const e of chain(error)) {
    const kind = kindOfOne(e)
    if (kind !== undefined) found.add(kind)
  }
  return precedence.find((kind) => found.has(kind)) ?? "Unknown"
}

/** The client's code: the Kafka error id (`apiId`) first, else the client's or a socket's code. */
export const codeOf = (error: unknown): string | number | undefined => {
  const errors = chain(error)
  for (const e of errors) {
    const apiId = stringField(e, "apiId")
    if (apiId !== undefined) return apiId
  }
  for (const e of errors) {
    const code = BrokerErrors.codeOf(field(e, "reason")) ?? BrokerErrors.codeOf(e)
    if (code !== undefined && code !== "PLT_KFK_MULTIPLE" && code !== "PLT_KFK_RESPONSE") return code
  }
  return undefined
}

/** The `Errors.Reason` of a @platformatic/kafka failure, `context` in front of the broker's words. */
export const reasonOf: (error: unknown, context?: string) => Errors.Reason = BrokerErrors.contextual({
  kindOf,
  messageOf: (error) => messageOf(error),
  codeOf
})

export const { connectionError, publishError, subscribeError } = BrokerErrors.constructors(reasonOf)
