/**
 * Random UUIDs (version 4) as flat strings.
 *
 * Why not `crypto.randomUUID()`: Node builds its result by concatenating 20 pieces, so the string is a rope
 * of cons cells (about 490 bytes of heap per id against about 56 for the flat text). Every id Switchyard
 * makes is kept with its message until it is settled (the in-memory broker keeps it for good), so the rope
 * is copied by every scavenge it survives, and flattened, cache-cold, the first time it is read (measured on
 * the in-memory pipeline: 6 % of its CPU at one `charCodeAt`). Reading a character right after creating it
 * does not help: optimised code drops a read whose result is unused.
 *
 * The randomness is the same: bytes of `crypto.getRandomValues` (a CSPRNG), taken from a pool refilled 256
 * ids at a time, as Node does for `randomUUID`.
 */

const idsPerRefill = 256
const pool = new Uint8Array(16 * idsPerRefill)
let next = pool.length

/** The two ASCII codes of each byte's lower-case hex digits, at `2 × byte` and `2 × byte + 1`. */
const hexCodes: ReadonlyArray<number> = Array.from({ length: 256 }, (_, byte) => {
  const digits = byte.toString(16).padStart(2, "0")
  return [digits.charCodeAt(0), digits.charCodeAt(1)]
}).flat()

/** The 36 character codes of the id being built (reused: `String.fromCharCode` copies them into a flat string). */
const codes: Array<number> = new Array<number>(36).fill(0)

const dash = 45

/** A fresh random UUID v4, e.g. `"3b241101-e2bb-4255-8caf-4136c566a962"`, as a flat string. */
export const randomUuid = (): string => {
  if (next === pool.length) {
    globalThis.crypto.getRandomValues(pool)
    next = 0
  }
  const start = next
  next += 16
  pool[start + 6] = (pool[start + 6]! & 0x0f) | 0x40 // version 4
  pool[start + 8] = (pool[start + 8]! & 0x3f) | 0x80 // RFC 4122 variant
  let at = 0
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) codes[at++] = dash
    const byte = pool[start + i]!
    codes[at++] = hexCodes[2 * byte]!
    codes[at++] = hexCodes[2 * byte + 1]!
  }
  return String.fromCharCode.apply(null, codes)
}
