/**
 * nats.js errors classified once, at the adapter's edge, into an `Errors.Reason` (from nats.js's error
 * classes and JetStream's API error codes, never from message text), keeping the server's own words and
 * code; and secrets kept out of every error.
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { jserrors } from "@nats-io/jetstream/internal"
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
import { Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"
import { Result } from "effect"

/** JetStream API error codes (nats-server `errors.json`) with a kind of their own. */
const apiCodeKinds: ReadonlyMap<number, Errors.ErrorKind> = new Map<number, Errors.ErrorKind>([
  [10054, "TooLarge"], // JSStreamMessageExceedsMaximumErr: message size exceeds maximum allowed
  [10097, "TooLarge"], // JSStreamHeaderExceedsMaximumErr: header size exceeds maximum allowed of 64k
  [10059, "NotFound"], // JSStreamNotFoundErr
  [10014, "NotFound"], // JSConsumerNotFoundErr
  [10037, "NotFound"], // JSNoMessageFoundErr
  [10058, "TopologyConflict"], // JSStreamNameExistErr: stream name already in use with a different configuration
  [10065, "TopologyConflict"], // JSStreamSubjectOverlapErr: subjects overlap with an existing stream
  [10148, "TopologyConflict"], // JSConsumerAlreadyExists (with a different configuration)
  [10013, "TopologyConflict"], // JSConsumerNameExistErr
  [10039, "Unreachable"] // JSNotEnabledForAccountErr
])

/** The JetStream API error codes named in the adapter. */
export const apiCodes = {
  streamNotFound: 10059,
  consumerNotFound: 10014,
  noMessageFound: 10037
} as const

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

/** Whether a failure is a JetStream API error, with this code when one is given. */
export const isApiError = (cause: unknown, code?: number): cause is JetStreamApiError =>
  cause instanceof JetStreamApiError && (code === undefined || cause.code === code)

/**
 * Whether nothing answered a JetStream request: nats.js reports a publish to a subject no stream holds,
 * and a request to a server without JetStream, as `JetStreamNotEnabled` (caused by no responders).
 */
export const isNoStream = (cause: unknown): boolean =>
  cause instanceof jserrors.JetStreamNotEnabled || cause instanceof NoRespondersError ||
  (cause instanceof Error && cause.cause instanceof NoRespondersError)

const kindOfNode = (cause: unknown): Errors.ErrorKind | undefined => {
  const code = BrokerErrors.codeOf(cause)
  return typeof code === "string" && unreachableCodes.has(code) ? "Unreachable" : undefined
}

/**
 * The kind of a nats.js failure. `tooLarge` tells an `InvalidArgumentError` (nats.js refusing to send)
 * caused by the size limit from one caused by bad input: nats.js gives that refusal no code, so the caller
 * checks the size against the server's `max_payload` instead of reading the message.
 */
export const kindOf = (cause: unknown, tooLarge?: () => boolean): Errors.ErrorKind => {
  if (cause instanceof JetStreamApiError) return apiCodeKinds.get(cause.code) ?? statusKind(cause.status)
  if (cause instanceof InvalidArgumentError) return tooLarge !== undefined && tooLarge() ? "TooLarge" : "Invalid"
  if (cause instanceof InvalidSubjectError) return "Invalid"
  if (cause instanceof TimeoutError) return "Timeout"
  if (isNoStream(cause)) return "NotFound"
  if (cause instanceof RequestError) return cause.isNoResponders() ? "NotFound" : kindOf(cause.cause, tooLarge)
  if (cause instanceof AuthorizationError || cause instanceof UserAuthenticationExpiredError) {
    return "AuthenticationFailed"
  }
  if (cause instanceof PermissionViolationError) return "AuthorizationFailed"
  if (cause instanceof ClosedConnectionError || cause instanceof DrainingConnectionError) return "BrokerClosed"
  if (cause instanceof ConnectionError) return "Unreachable"
  const node = kindOfNode(cause)
  if (node !== undefined) return node
  if (cause instanceof Error && cause.cause !== undefined && cause.cause !== cause) return kindOf(cause.cause, tooLarge)
  return "Unknown"
}

/**
 * The `Errors.Reason` of a nats.js failure: its kind, the server's (or client's) own text, and the code
 * (a JetStream API `err_code`, a socket errno).
 */
export const reasonOf: (cause: unknown, message?: string) => Errors.Reason = BrokerErrors.classifier((cause) =>
  kindOf(cause)
)

/** {@link reasonOf} for a refused publish: an `InvalidArgumentError` is `TooLarge` when `tooLarge()` says so. */
export const publishReasonOf = (cause: unknown, tooLarge: () => boolean, message?: string): Errors.Reason =>
  BrokerErrors.classifier((error) => kindOf(error, tooLarge))(cause, message)

/** A reason whose message says what was being done: `"<what>: <the server's text>"`. */
export const reasonIn = (what: string, cause: unknown): Errors.Reason =>
  reasonOf(cause, `${what}: ${BrokerErrors.messageOf(cause)}`)

/** The `SubscribeError` of a failed step of a subscription (or admin operation) on a destination. */
export const subscribeError = (destination: string, what?: string) => (cause: unknown): Errors.SubscribeError =>
  new Errors.SubscribeError({
    destination,
    reason: what === undefined ? reasonOf(cause) : reasonIn(what, cause),
    cause
  })

/** The `AckError` of a settlement the client refused. */
export const ackError = (destination: string) => (cause: unknown): Errors.AckError =>
  new Errors.AckError({ destination, reason: reasonOf(cause), cause })

const redactedMark = "<redacted>"

/**
 * A server URL without its credentials (`nats://user:pw@host` → `nats://user:<redacted>@host`; a token in
 * the user part, `nats://token@host`, is redacted too).
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
  const decoded = Result.getOrElse(Result.try(() => decodeURIComponent(secret)), () => secret)
  return decoded === secret ? [secret] : [secret, decoded]
}

/** Removes every secret from a text. */
export const redact = (text: string, secrets: ReadonlyArray<string>): string =>
  secrets.reduce((out, secret) => secret.length > 0 ? out.split(secret).join(redactedMark) : out, text)

/** A reason with every secret removed from its message. */
export const redactReason = (reason: Errors.Reason, secrets: ReadonlyArray<string>): Errors.Reason =>
  Errors.reason(reason._tag, redact(reason.message, secrets), reason.code)

/**
 * A copy of a thrown value that is safe to attach as an error's `cause`: same name, message and stack without
 * the secrets, and a redacted copy of its own cause. Nothing else of the original (which may hold the
 * connection options) is kept.
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
