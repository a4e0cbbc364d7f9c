/**
 * Classification of AWS SDK (client-sqs) failures into core's `Errors.Reason`, once, at the adapter's edge:
 * from the service error's `name` (the SQS error code, e.g. `QueueDoesNotExist`), the HTTP status in
 * `$metadata`, the SDK's own `TimeoutError`/`AbortError`, and Node's socket `code`s (also on the wrapped
 * `cause`), never from message text. The reason keeps the service's own words and its error code.
 */
import { Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"

import { Predicate, Schema } from "effect"

const { field, stringField } = BrokerErrors

type ErrorKind = Errors.ErrorKind

/** SQS error codes (the service exception's `name`, or the legacy `AWS.SimpleQueueService.*` query codes). */
const byName: Readonly<Record<string, ErrorKind>> = {
  QueueDoesNotExist: "NotFound",
  ResourceNotFoundException: "NotFound",
  "AWS.SimpleQueueService.NonExistentQueue": "NotFound",
  QueueDeletedRecently: "TopologyConflict",
  "AWS.SimpleQueueService.QueueDeletedRecently": "TopologyConflict",
  QueueNameExists: "TopologyConflict",
  QueueAlreadyExists: "TopologyConflict",
  InvalidAttributeName: "Invalid",
  InvalidAttributeValue: "Invalid",
  InvalidParameterValue: "Invalid",
  InvalidParameterValueException: "Invalid",
  InvalidMessageContents: "Invalid",
  InvalidIdFormat: "Invalid",
  InvalidBatchEntryId: "Invalid",
  BatchEntryIdsNotDistinct: "Invalid",
  EmptyBatchRequest: "Invalid",
  TooManyEntriesInBatchRequest: "Invalid",
  UnsupportedOperation: "Invalid",
  MissingParameter: "Invalid",
  ValidationError: "Invalid",
  BatchRequestTooLong: "TooLarge",
  MessageTooLong: "TooLarge",
  ReceiptHandleIsInvalid: "Invalid",
  MessageNotInflight: "Invalid",
  InvalidClientTokenId: "AuthenticationFailed",
  UnrecognizedClientException: "AuthenticationFailed",
  SignatureDoesNotMatch: "AuthenticationFailed",
  IncompleteSignature: "AuthenticationFailed",
  MissingAuthenticationToken: "AuthenticationFailed",
  ExpiredToken: "AuthenticationFailed",
  CredentialsProviderError: "AuthenticationFailed",
  AccessDenied: "AuthorizationFailed",
  AccessDeniedException: "AuthorizationFailed",
  KmsAccessDenied: "AuthorizationFailed",
  RequestThrottled: "Unreachable",
  ThrottlingException: "Unreachable",
  KmsThrottled: "Unreachable",
  "KMS.ThrottlingException": "Unreachable",
  OverLimit: "Unreachable",
  ServiceUnavailable: "Unreachable",
  InternalError: "Unknown",
  TimeoutError: "Timeout",
  RequestTimeout: "Timeout",
  RequestTimeoutException: "Timeout",
  AbortError: "BrokerClosed"
}

/** Node socket errors that mean "nobody answered there" (the endpoint is down or restarting). */
const unreachableCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED"
])
const timeoutCodes = new Set(["ETIMEDOUT", "ESOCKETTIMEDOUT"])


/** The error and what it wraps (`cause`), a few levels deep. */
const chain = (error: unknown): ReadonlyArray<unknown> => BrokerErrors.causeChain(error, ["cause"], 6)

const isErrorKind = Schema.is(Errors.ErrorKind)

const byStatus = (status: unknown): ErrorKind | undefined => {
  if (typeof status !== "number") return undefined
  if (status === 401) return "AuthenticationFailed"
  if (status === 403) return "AuthorizationFailed"
  if (status === 404) return "NotFound"
  if (status === 408) return "Timeout"
  if (status === 413) return "TooLarge"
  if (status === 429 || status === 502 || status === 503 || status === 504) return "Unreachable"
  if (status >= 400 && status < 500) return "Invalid"
  return undefined
}

const kindOfOne = (error: unknown): ErrorKind | undefined => {
  const own = field(error, "reason")
  if (Predicate.hasProperty(own, "_tag") && isErrorKind(own._tag)) return own._tag
  const code = BrokerErrors.codeOf(error)
  if (typeof code === "string" && unreachableCodes.has(code)) return "Unreachable"
  if (typeof code === "string" && timeoutCodes.has(code)) return "Timeout"
  const name = stringField(error, "name")
  const named = name === undefined ? undefined : byName[name]
  if (named !== undefined) return named
  const awsCode = stringField(error, "Code") ?? stringField(field(error, "Error"), "Code")
  if (awsCode !== undefined && byName[awsCode] !== undefined) return byName[awsCode]
  return byStatus(field(field(error, "$metadata"), "httpStatusCode"))
}

/**
 * The kind of an SDK failure: the first error in its `cause` chain that tells.
 */
export const kindOf = (error: unknown): ErrorKind => {
  for (const e of chain(error)) {
    const kind = kindOfOne(e)
    if (kind !== undefined) return kind
  }
  return "Unknown"
}

/** The SQS error code (the exception's `name`) or the socket code, for the reason's `code`. */
const codeOfError = (error: unknown): string | number | undefined => {
  for (const e of chain(error)) {
    const code = BrokerErrors.codeOf(e)
    if (code !== undefined) return code
    const name = stringField(e, "name")
    if (name !== undefined && name !== "Error") return name
  }
  return undefined
}

/**
 * The reason of an SDK failure: its kind, the service's words (prefixed by `context` when given), its code.
 */
export const reasonOf: (error: unknown, context?: string) => Errors.Reason = BrokerErrors.contextual({
  kindOf,
  codeOf: codeOfError
})

/** The error SQS reported for one entry of a batch (`Code`, `Message`), as an `Error` the classifier reads. */
export const entryError = (code: string | undefined, message: string | undefined): Error =>
  Object.assign(new Error(message ?? code ?? "SQS refused the entry"), { name: code ?? "Unknown" })

/** The publish, subscribe, settlement and connection failures (the SDK's error kept as `cause`). */
export const { ackError, connectionError, publishError, subscribeError } = BrokerErrors.constructors(reasonOf)
