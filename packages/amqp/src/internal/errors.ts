/**
 * Classification of amqplib's errors, once, at the adapter's edge (pure; unit-tested).
 *
 * amqplib reports three sorts of failure:
 * - the broker closed a channel or the connection: an `Error` whose `code` is the AMQP reply code
 *   (404 NOT_FOUND, 406 PRECONDITION_FAILED, …) and whose message holds the broker's reply text;
 * - the socket failed: a Node system error whose `code` is an errno string (`ECONNREFUSED`, …);
 * - the client refused to encode a frame (a field of the wrong type, a header table past its 64 KiB
 *   encoding buffer): a `TypeError` or `RangeError` thrown synchronously, before anything is written.
 *
 * Handshake failures are the exception: amqplib puts the reply code only in the text
 * (`Handshake terminated by server: 403 (ACCESS-REFUSED) …`) or drops the close frame entirely
 * (`Expected ConnectionOpenOk; got <ConnectionClose channel:0>`, RabbitMQ's 530 for a virtual host that
 * does not exist or that the user may not open). The client gives nothing else there, so those two forms
 * are recognised by their fixed prefix, and the reply code is read from the text.
 */
import type { Errors } from "@switchyard/core"
import { BrokerErrors } from "@switchyard/core/adapter"

type ErrorKind = Errors.ErrorKind

/** Where an error happened: in the connection handshake (403 = login refused) or on an open connection. */
export type During = "connect" | "operation"

/** What a reply code means when the broker closes a channel or the connection (AMQP 0-9-1 §1.9). */
export const replyCodeKind = (code: number, text: string): ErrorKind => {
  switch (code) {
    case 311: // CONTENT_TOO_LARGE
      return "TooLarge"
    case 312: // NO_ROUTE
      return "Unroutable"
    case 403: // ACCESS_REFUSED on a resource
      return "AuthorizationFailed"
    case 404: // NOT_FOUND
      return "NotFound"
    case 405: // RESOURCE_LOCKED (an exclusive queue of another connection)
      return "TopologyConflict"
    case 406: // PRECONDITION_FAILED: an inequivalent declaration, or a message past `max_message_size`
      return text.includes("larger than configured max size") ? "TooLarge" : "TopologyConflict"
    case 530: // NOT_ALLOWED (a virtual host that does not exist or may not be opened)
      return "NotFound"
    case 501: // FRAME_ERROR
    case 502: // SYNTAX_ERROR
    case 503: // COMMAND_INVALID
    case 505: // UNEXPECTED_FRAME
    case 540: // NOT_IMPLEMENTED
      return "Invalid"
    case 320: // CONNECTION_FORCED (broker shutdown, management UI)
    case 504: // CHANNEL_ERROR
    case 506: // RESOURCE_ERROR
    case 541: // INTERNAL_ERROR
      return "BrokerClosed"
    default:
      return "Unknown"
  }
}

const unreachable = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET", "EPIPE"])

/** What an errno (or TLS) code means. */
export const socketKind = (code: string): ErrorKind =>
  unreachable.has(code)
    ? "Unreachable"
    : code === "ETIMEDOUT"
    ? "Timeout"
    : code.startsWith("ERR_TLS") || code.startsWith("CERT_") || code.includes("SELF_SIGNED") ||
        code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
    ? "AuthenticationFailed"
    : "Unknown"

const handshakeRefusal = /^Handshake terminated by server: (\d{3})/
const vhostRefusal = "Expected ConnectionOpenOk; got <ConnectionClose"

/** The reply code of a handshake refusal, read from amqplib's text (it gives no `code` there). */
export const handshakeCode = (message: string): number | undefined => {
  const refused = handshakeRefusal.exec(message)
  return refused !== null ? Number(refused[1]) : message.startsWith(vhostRefusal) ? 530 : undefined
}

/** The reply code or errno of an error: its `code`, else the one in a handshake refusal's text. */
export const codeOf = (error: unknown): string | number | undefined =>
  BrokerErrors.codeOf(error) ?? handshakeCode(BrokerErrors.messageOf(error))

const numericKind = (code: number, message: string, during: During): ErrorKind =>
  code === 403 && (during === "connect" || handshakeRefusal.test(message)) ? "AuthenticationFailed" : replyCodeKind(code, message)

/** The kind of any amqplib error, from its codes (and, for the handshake forms, the code in its text). */
export const kindOf = (during: During) => (error: unknown): ErrorKind => {
  const code = codeOf(error)
  const message = BrokerErrors.messageOf(error)
  if (typeof code === "number") return numericKind(code, message, during)
  if (typeof code === "string") return socketKind(code)
  if (error instanceof RangeError) return message.includes("exceeds") ? "TooLarge" : "Invalid"
  if (error instanceof TypeError) return "Invalid"
  // IllegalOperationError: "Channel closed", "Connection closed", "Channel ended"
  if (error instanceof Error && error.name === "IllegalOperationError") return "BrokerClosed"
  return "Unknown"
}

/**
 * The broker's own words for an error, with amqplib's frame dump replaced by what it means (for a virtual
 * host the broker refused, amqplib drops the reply text), and any secret cut out.
 */
export const describe = (
  error: unknown,
  context: { readonly vhost?: string | undefined; readonly username?: string | undefined; readonly secrets?: ReadonlyArray<string> } = {}
): string => {
  const message = BrokerErrors.messageOf(error)
  const described = message.startsWith(vhostRefusal)
    ? `NOT_ALLOWED (530): the broker closed the connection when asked to open virtual host ` +
      `"${context.vhost ?? "/"}": it does not exist, or user "${context.username ?? "?"}" has no access to it`
    : message
  return (context.secrets ?? []).reduce((text, secret) => secret === "" ? text : text.split(secret).join("<redacted>"), described)
}

const classifiers = {
  connect: BrokerErrors.classifier(kindOf("connect")),
  operation: BrokerErrors.classifier(kindOf("operation"))
}

/** A handshake refusal as an error with its reply code (amqplib has it only in the text). */
const normalize = (error: unknown): unknown => {
  if (BrokerErrors.codeOf(error) !== undefined) return error
  const message = BrokerErrors.messageOf(error)
  const code = handshakeCode(message)
  return code === undefined ? error : Object.assign(new Error(message), { code })
}

/**
 * The `Errors.Reason` of an amqplib error: the kind from its codes, the broker's text (or `message`), the
 * reply code or errno.
 */
export const reasonOf = (error: unknown, during: During = "operation", message?: string): Errors.Reason =>
  classifiers[during](normalize(error), message ?? describe(error))
