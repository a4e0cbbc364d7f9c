/**
 * Switchyard destination names → SQS queue names. SQS allows 1–80 characters of `[A-Za-z0-9_-]` (plus the
 * `.fifo` suffix of FIFO queues). A destination that already is such a name is the queue of that name, so an
 * existing queue (`order_events`, `billing-in.fifo`) is reached by its own name. Any other name (Switchyard's
 * own use dots: `orders.dlq`) is escaped: letters, digits and `-` stay, `_` becomes `_u`, `.` becomes `_d`,
 * any other character `_x` + its UTF-8 bytes in hex; a trailing `.fifo` stays (it makes the queue FIFO).
 * Escaped names are distinct from each other; one could only meet a plain name spelled like an escape
 * (`orders_ddlq`). A name longer than 80 characters after mapping is refused.
 */
const fifoSuffix = ".fifo"

/** Whether a destination names a FIFO queue (`….fifo`). */
export const isFifo = (destination: string): boolean => destination.endsWith(fifoSuffix)

const encoder = new TextEncoder()

const escapeChar = (char: string): string => {
  if (/^[A-Za-z0-9-]$/.test(char)) return char
  if (char === "_") return "_u"
  if (char === ".") return "_d"
  return [...encoder.encode(char)].map((b) => `_x${b.toString(16).padStart(2, "0")}`).join("")
}

const plainName = /^[A-Za-z0-9_-]+$/

/** The SQS queue name of a destination (not checked for length: see {@link invalidQueueName}). */
export const queueNameOf = (destination: string): string => {
  const fifo = isFifo(destination)
  const base = fifo ? destination.slice(0, -fifoSuffix.length) : destination
  if (plainName.test(base)) return destination
  return [...base].map(escapeChar).join("") + (fifo ? fifoSuffix : "")
}

/** Whether a name is one SQS accepts as it is: 1–80 of `[A-Za-z0-9_-]`, the `.fifo` suffix included. */
export const isQueueName = (name: string): boolean =>
  plainName.test(isFifo(name) ? name.slice(0, -fifoSuffix.length) : name) && invalidQueueName(name) === undefined

/** Why a queue name cannot be used, or `undefined` when SQS accepts it. */
export const invalidQueueName = (queueName: string): string | undefined =>
  queueName.length === 0 || queueName === fifoSuffix
    ? "an SQS queue name cannot be empty"
    : queueName.length > 80
    ? `the SQS queue name "${queueName}" is ${queueName.length} characters long (at most 80)`
    : undefined
