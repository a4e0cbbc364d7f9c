/**
 * The offset-commit metadata that carries what a member acknowledged past its commit point.
 *
 * Kafka commits one offset per partition, so acks out of order (concurrent handlers) can only be committed
 * up to the first record not yet acked; everything acked above it would be handled again by the next owner
 * of the partition (after a rebalance, a restart or a SIGTERM). The commit's metadata string (free text,
 * ignored by other clients) therefore lists the acknowledged offsets above the committed one, and the next
 * owner skips them. Records buffered but not started are not in it, so they go to the next owner at once.
 *
 * Format: `sy1:` + comma separated ranges `a` or `a-b` of offsets relative to the committed offset, base 36.
 * The text is bounded (the broker refuses metadata over `offset.metadata.max.bytes`, 4096 by default): when
 * it would be longer, the highest ranges are left out, which only means more redeliveries, never a loss.
 */

const prefix = "sy1:"

/** Stays under the broker's default `offset.metadata.max.bytes` (4096). */
export const maxMetadataLength = 3500

/**
 * Encodes acked offsets above `base` (ascending; offsets at or below `base` are ignored).
 */
export const encodeAcked = (base: number, acked: Iterable<number>, maxLength: number = maxMetadataLength): string => {
  let out = prefix
  let start: number | undefined
  let end = 0
  const flush = (): boolean => {
    if (start === undefined) return true
    const range = start === end ? (start - base).toString(36) : `${(start - base).toString(36)}-${(end - base).toString(36)}`
    const next = out === prefix ? out + range : `${out},${range}`
    if (next.length > maxLength) return false
    out = next
    return true
  }
  for (const offset of acked) {
    if (offset <= base) continue
    if (start !== undefined && offset === end + 1) {
      end = offset
      continue
    }
    if (start !== undefined && offset <= end) continue
    if (!flush()) return out === prefix ? "" : out
    start = offset
    end = offset
  }
  if (!flush()) return out === prefix ? "" : out
  return out === prefix ? "" : out
}

const base36 = /^[0-9a-z]+$/

/** More offsets than this in one metadata string is not something `encodeAcked` writes: ignore it. */
const maxDecoded = 200_000

/**
 * Decodes what {@link encodeAcked} wrote for the commit at `base`, in ascending order; anything else
 * (another client's metadata, garbage) gives the empty set.
 */
export const decodeAcked = (base: number, metadata: string | null | undefined): ReadonlySet<number> => {
  const out = new Set<number>()
  let last = base
  if (metadata === null || metadata === undefined || !metadata.startsWith(prefix)) return out
  for (const range of metadata.slice(prefix.length).split(",")) {
    const [from, to, ...rest] = range.split("-")
    if (from === undefined || !base36.test(from) || rest.length > 0 || (to !== undefined && !base36.test(to))) {
      return new Set()
    }
    const a = parseInt(from, 36)
    const b = to === undefined ? a : parseInt(to, 36)
    if (a < 1 || b < a || (out.size > 0 && base + a <= last) || out.size + b - a >= maxDecoded) return new Set()
    for (let i = a; i <= b; i++) out.add(base + i)
    last = base + b
  }
  return out
}
