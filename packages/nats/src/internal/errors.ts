/**
 * nats.js errors classified once, at the adapter's edge, into Switchyard's `ErrorKind`s (from nats.js's error
 * classes and JetStream's API error codes, never from message text), and secrets kept out of every error.
 *
 * @internal
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  InvalidSubjectError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  UserAuthenticationExpiredError
} from "@nats-io/transport-node"
import type { Errors } from "@switchyard/core"
import { Predicate } from "effect"

/** JetStream API error codes (nats-server `errors.json`) with a kind of their own. */
const apiCodeKinds: ReadonlyMap<number, Errors.ErrorKind> = new Map<number, Errors.ErrorKind>([
  [10054, "TooLarge"], // JSStreamMessageExceedsMaximumErr: message size exceeds maximum allowed
  [10097, "TooLarge"], // JSStreamHeaderExceedsMaximumErr: header size exceeds maximum allowed of 64k
  [10059, "NotFound"], // JSStreamNotFoundErr
  [10014, "NotFound"], // JSConsumerNotFoundErr
  [10058, "TopologyConflict"], // JSStreamNameExistErr: stream name already in use with a different configuration
  [10065, "TopologyConflict"], // JSStreamSubjectOverlapErr: subjects overlap with an existing stream
  [10148, "TopologyConflict"], // JSConsumerAlreadyExists (with a different configuration)
  [10013, "TopologyConflict"] // JSConsumerNameExistErr
])

/** The kind of an API error without a code of its own, from its HTTP-like status. */
const statusKind = (status: number): Errors.ErrorKind =>
  status === 404
    ? "NotFound"
    : status === 408
    ? "Timeout"
    : status === 409
    ? "TopologyConflict"
    : status === 413
    ? "TooLarge"
    : status === 503
    ? "Unreachable"
    : status >= 400 && status < 500
    ? "Invalid"
    : "Unknown"

/** Node's socket error codes that mean the server cannot be reached. */
const unreachableCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ETIMEDOUT"
])

/**
 * The kind of a nats.js failure. `tooLarge` tells an `InvalidArgumentError` (nats.js refusing to send)
 * caused by the size limit from one caused by bad input: nats.js gives that refusal no code, so the caller
 * checks the size against the server's `max_payload` instead of reading the message.
 */
export const kindOf = (cause: unknown, tooLarge: (() => boolean) | undefined = undefined): Errors.ErrorKind => {
  if (cause instanceof JetStreamApiError) return apiCodeKinds.get(cause.code) ?? statusKind(cause.status)
  if (cause instanceof InvalidArgumentError) return tooLarge !== undefined && tooLarge() ? "TooLarge" : "Invalid"
  if (cause instanceof InvalidSubjectError) return "Invalid"
  if (cause instanceof TimeoutError) return "Timeout"
  // nats.js reports a JetStream publish nobody answers (no stream) as "JetStreamNotEnabled", a class it does
  // not export: its name is part of its API.
  if (cause instanceof NoRespondersError || (cause instanceof Error && cause.name === "JetStreamNotEnabled")) {
    return "NotFound"
  }
  if (cause instanceof RequestError) return cause.isNoResponders() ? "NotFound" : kindOf(cause.cause, tooLarge)
  if (cause instanceof AuthorizationError || cause instanceof UserAuthenticationExpiredError) {
    return "AuthenticationFailed"
  }
  if (cause instanceof PermissionViolationError) return "AuthorizationFailed"
  if (cause instanceof ClosedConnectionError || cause instanceof DrainingConnectionError) return "BrokerClosed"
  if (cause instanceof ConnectionError) return "Unreachable"
  if (Predicate.hasProperty(cause, "code") && typeof cause.code === "string" && unreachableCodes.has(cause.code)) {
    return "Unreachable"
  }
  if (cause instanceof Error && cause.cause !== undefined && cause.cause !== cause) return kindOf(cause.cause, tooLarge)
  return "Unknown"
}

const redactedMark = "<redacted>"

/**
 * A server URL without its credentials (`nats://user:pw@host` → `nats://user:<redacted>@host`; a token in
 * the user part, `nats://token@host`, is redacted too). Unparseable text is returned with nothing after a
 * `//…@` kept.
 */
export const redactUrl = (url: string): string => {
  const at = url.lastIndexOf("@")
  if (at === -1) return url
  const scheme = url.indexOf("://")
  const start = scheme === -1 ? 0 : scheme + 3
  if (at < start) return url
  const userInfo = url.slice(start, at)
  const colon = userInfo.indexOf(":")
  const shown = colon === -1 ? redactedMark : `${userInfo.slice(0, colon)}:${redactedMark}`
  return `${url.slice(0, start)}${shown}${url.slice(at)}`
}

/** The secrets a server URL carries (password, or a token in the user part), decoded and as written. */
export const urlSecrets = (url: string): ReadonlyArray<string> => {
  const at = url.lastIndexOf("@")
  const scheme = url.indexOf("://")
  const start = scheme === -1 ? 0 : scheme + 3
  if (at < start) return []
  const userInfo = url.slice(start, at)
  const colon = userInfo.indexOf(":")
  const secret = colon === -1 ? userInfo : userInfo.slice(colon + 1)
  if (secret === "") return []
  const decoded = safeDecode(secret)
  return decoded === secret ? [secret] : [secret, decoded]
}

const safeDecode = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** Removes every secret from a text. */
export const redact = (text: string, secrets: ReadonlyArray<string>): string => {
  let out = text
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join(redactedMark)
  }
  return out
}

/**
 * A copy of a thrown value that is safe to attach as an error's `cause`: same name and class-like shape,
 * message and stack without the secrets, and a redacted copy of its own cause. Nothing else of the original
 * (which may hold the connection options) is kept.
 */
export const redactCause = (cause: unknown, secrets: ReadonlyArray<string>): Error => {
  const error = cause instanceof Error ? cause : new Error(String(cause))
  const copy = new Error(
    redact(error.message, secrets),
    error.cause === undefined || error.cause === error ? undefined : { cause: redactCause(error.cause, secrets) }
  )
  copy.name = error.name
  if (error.stack !== undefined) copy.stack = redact(error.stack, secrets)
  return copy
}
