/**
 * Classification of amqplib's errors into Switchyard's `ErrorKind`, once, at the adapter's edge.
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
 * does not exist or that the user may not open), so those two forms are recognised by their fixed prefix.
 *
 * @internal
 */
import type { Errors } from "@switchyard/core"
import { Predicate } from "effect"

type ErrorKind = Errors.ErrorKind

/** The AMQP reply code or errno string of an amqplib error, when it has one. */
export const codeOf = (error: unknown): number | string | undefined =>
  Predicate.hasProperty(error, "code") && (typeof error.code === "number" || typeof error.code === "string")
    ? error.code
    : undefined

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

const socketKind = (code: string): ErrorKind | undefined =>
  unreachable.has(code)
    ? "Unreachable"
    : code === "ETIMEDOUT"
    ? "Timeout"
    : code.startsWith("ERR_TLS") || code.startsWith("CERT_") || code.includes("SELF_SIGNED") ||
        code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
    ? "AuthenticationFailed"
    : undefined

const handshakeRefusal = /^Handshake terminated by server: (\d{3})/
const vhostRefusal = "Expected ConnectionOpenOk; got <ConnectionClose"

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * Classifies any amqplib error. `during` tells a connection handshake (where 403 means the login was
 * refused) from operations on an open connection (where 403 is a permission on a resource).
 */
export const classify = (error: unknown, during: "connect" | "operation" = "operation"): ErrorKind => {
  const code = codeOf(error)
  const message = messageOf(error)
  if (typeof code === "number") return code === 403 && during === "connect" ? "AuthenticationFailed" : replyCodeKind(code, message)
  if (typeof code === "string") return socketKind(code) ?? "Unknown"
  const refused = handshakeRefusal.exec(message)
  if (refused !== null) {
    const reply = Number(refused[1])
    return reply === 403 ? "AuthenticationFailed" : replyCodeKind(reply, message)
  }
  if (message.startsWith(vhostRefusal)) return "NotFound"
  if (message === "connect ETIMEDOUT") return "Timeout"
  if (error instanceof RangeError) return message.includes("exceeds") ? "TooLarge" : "Invalid"
  if (error instanceof TypeError) return "Invalid"
  // IllegalOperationError: "Channel closed", "Connection closed", "Channel ended"
  if (error instanceof Error && error.name === "IllegalOperationError") return "BrokerClosed"
  return "Unknown"
}

/**
 * The broker's own words for an error, with amqplib's frame dump replaced by what it means: for a virtual
 * host the broker refused, amqplib drops the reply text, so the reason names the vhost and the user instead.
 */
export const describe = (error: unknown, context: { readonly vhost?: string | undefined; readonly username?: string | undefined } = {}): string => {
  const message = messageOf(error)
  if (!message.startsWith(vhostRefusal)) return message
  return `NOT_ALLOWED (530): the broker closed the connection when asked to open virtual host ` +
    `"${context.vhost ?? "/"}": it does not exist, or user "${context.username ?? "?"}" has no access to it`
}
