/**
 * Reading a received message's header block without nats.js's `MsgHdrsImpl.decode`.
 *
 * Why: nats.js decodes a block into its header map line by line through `append`, which canonicalises every
 * name into a fresh array, scans the keys already there and compiles a regex per value. On the core NATS
 * pipeline that was ~15 % of the CPU per message (four headers), for a map Switchyard reads once and drops.
 *
 * How: nats.js keeps the bytes it received (`MsgImpl._rdata`, the block's length in `_msg.hdr`; a JetStream
 * message wraps one in `msg`). These are fields of its exported, typed `MsgImpl`, not documented API, so
 * they are read only when they look as expected and the headers were not decoded yet; otherwise, and for any
 * block nats.js would read differently or refuse (a status line, a name it rejects, CR or LF in a value), the
 * caller uses `msg.headers` as before. What is read is what nats.js would have put in its map, line by line
 * in order, with the same text decoding and trimming (tests check both against `MsgHdrsImpl.decode`).
 */

/** nats.js's decoder of header text (its `TD`: UTF-8 with replacement, a leading BOM dropped). */
const textDecoder = new TextDecoder()

const head = "NATS/1.0\r\n"

/** A header name nats.js accepts: printable ASCII without `:` (what its `canonicalMIMEHeaderKey` checks). */
export const validName = /^[!-9;-~]*$/

const crOrLf = /[\r\n]/

/** A message nats.js received, whose header block it has not decoded yet: the block's bytes. */
const ownBlock = (msg: object): Uint8Array | undefined => {
  if (!("_rdata" in msg) || !("_msg" in msg) || !("_headers" in msg) || msg._headers !== undefined) return undefined
  const data = msg._rdata
  const arg = msg._msg
  if (!(data instanceof Uint8Array) || typeof arg !== "object" || arg === null || !("hdr" in arg)) return undefined
  const length = arg.hdr
  return typeof length === "number" && Number.isInteger(length) && length > 0 && length <= data.length ? data.subarray(0, length) : undefined
}

/**
 * The undecoded header block of a received message (core NATS `Msg`, or the `Msg` inside a JetStream
 * `JsMsg`), or `undefined` when it cannot be had that way (then read `msg.headers`).
 */
export const rawBlock = (msg: object): Uint8Array | undefined => {
  const own = ownBlock(msg)
  if (own !== undefined) return own
  return "msg" in msg && typeof msg.msg === "object" && msg.msg !== null ? ownBlock(msg.msg) : undefined
}

/**
 * Calls `onHeader(name, value)` for each header line of a block, in order, as nats.js would append it.
 * Returns `false` when nats.js would read the block otherwise (a status code or description on the first
 * line) or refuse it (a name with a character it rejects, CR or LF in a value): what `onHeader` was given
 * by then is to be dropped.
 */
export const eachHeader = (block: Uint8Array, onHeader: (name: string, value: string) => void): boolean => {
  const text = textDecoder.decode(block)
  if (!text.startsWith(head)) return false
  let start = head.length
  while (start < text.length) {
    const found = text.indexOf("\r\n", start)
    const end = found === -1 ? text.length : found
    // The colon is looked for within the line: a search through the rest of the block would make a block of
    // many lines without one cost its length squared.
    const line = text.slice(start, end)
    const colon = line.indexOf(":")
    if (colon > -1) {
      const name = line.slice(0, colon)
      const value = line.slice(colon + 1).trim()
      if (!validName.test(name) || crOrLf.test(value)) return false
      onHeader(name, value)
    }
    start = end + 2
  }
  return true
}
