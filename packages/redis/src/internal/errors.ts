/**
 * Classification of node-redis failures into core's `Errors.Reason`, once, at the adapter's edge: from the
 * server's error prefix (`NOGROUP`, `WRONGPASS`, `NOPERM`, `BUSYGROUP`, …, the first word of an `ErrorReply`),
 * node-redis's error classes (`name`) and Node's socket `code`s. effect's `RedisError` (from `NodeRedis`) is
 * unwrapped to the client error it carries. The reason keeps the server's own words and its prefix as `code`.
 */
import { Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"

import { Predicate } from "effect"
import {
  AbortError,
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  ErrorReply,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError
} from "redis"

const { field } = BrokerErrors

type ErrorKind = Errors.ErrorKind

const byPrefix: Readonly<Record<string, ErrorKind>> = {
  WRONGPASS: "AuthenticationFailed",
  NOAUTH: "AuthenticationFailed",
  NOPERM: "AuthorizationFailed",
  NOGROUP: "NotFound",
  BUSYGROUP: "TopologyConflict",
  WRONGTYPE: "TopologyConflict",
  LOADING: "Unreachable",
  MASTERDOWN: "Unreachable",
  READONLY: "BrokerClosed",
  OOM: "TooLarge",
  ERR: "Invalid"
}

/** node-redis's error classes (they do not set `name`, so they are told apart by class). */
const byClass: ReadonlyArray<readonly [abstract new(...args: ReadonlyArray<never>) => Error, ErrorKind]> = [
  [ConnectionTimeoutError, "Timeout"],
  [SocketTimeoutError, "Timeout"],
  [TimeoutError, "Timeout"],
  [ClientClosedError, "BrokerClosed"],
  [ClientOfflineError, "BrokerClosed"],
  [DisconnectsClientError, "BrokerClosed"],
  [SocketClosedUnexpectedlyError, "BrokerClosed"],
  [AbortError, "BrokerClosed"]
]

const unreachableCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNRESET", "EPIPE"])


/**
 * The error and the ones it wraps (effect's `RedisError.cause`, `Error.cause`, node-redis's `socketError`:
 * its ReconnectStrategyError carries the socket's error beside its own).
 */
export const chain = (error: unknown): ReadonlyArray<unknown> =>
  BrokerErrors.causeChain(error, ["cause", "socketError", "originalError"], 6)

/** The server's error prefix of a reply error (`NOGROUP No such key…` → `NOGROUP`). */
export const prefixOf = (error: unknown): string | undefined => {
  for (const e of chain(error)) {
    if (e instanceof ErrorReply) {
      const word = e.message.split(" ", 1)[0] ?? ""
      if (/^[A-Z]+$/.test(word)) return word
    }
  }
  return undefined
}

const kindOfOne = (error: unknown): ErrorKind | undefined => {
  const own = field(error, "reason")
  if (Predicate.hasProperty(own, "_tag") && typeof own._tag === "string" && Errors.ErrorKind.literals.some((k) => k === own._tag)) {
    return Errors.ErrorKind.literals.find((k) => k === own._tag)
  }
  const byItsClass = byClass.find(([cls]) => error instanceof cls)
  if (byItsClass !== undefined) return byItsClass[1]
  const code = BrokerErrors.codeOf(error)
  if (typeof code === "string" && unreachableCodes.has(code)) return "Unreachable"
  return undefined
}

/** The kind of a node-redis failure (`Unknown` when nothing in it is recognised). */
export const kindOf = (error: unknown): ErrorKind => {
  const prefix = prefixOf(error)
  if (prefix !== undefined && byPrefix[prefix] !== undefined) return byPrefix[prefix]
  for (const e of chain(error)) {
    const kind = kindOfOne(e)
    if (kind !== undefined) return kind
  }
  return "Unknown"
}

/** The innermost client error's words (effect's `RedisError` only says "RedisError"). */
export const messageOf = (error: unknown): string => {
  const errors = chain(error)
  for (let i = errors.length - 1; i >= 0; i--) {
    const e = errors[i]
    if (e instanceof Error && e.message !== "") return e.message
  }
  return BrokerErrors.messageOf(error)
}

const codeOf = (error: unknown): string | number | undefined => {
  const prefix = prefixOf(error)
  if (prefix !== undefined) return prefix
  for (const e of chain(error)) {
    const code = BrokerErrors.codeOf(e)
    if (code !== undefined) return code
  }
  return undefined
}

/** The `Errors.Reason` of a node-redis failure, `context` (what was being done) in front of the server's words. */
export const reasonOf: (error: unknown, context?: string) => Errors.Reason = BrokerErrors.contextual({ kindOf, messageOf, codeOf })

/** Whether a failure is the server's `NOGROUP` (the stream or its group is gone, e.g. a restart without persistence). */
export const isNoGroup = (error: unknown): boolean => prefixOf(error) === "NOGROUP"

export const { ackError, connectionError, publishError, subscribeError } = BrokerErrors.constructors(reasonOf)
