/**
 * The offset tracker of one partition: a PURE value (every operation returns a new tracker).
 *
 * Kafka commits one offset per partition, so out-of-order acks (concurrent handlers) can only be committed
 * up to the first delivered record that is not acked yet: the committed offset is the end of the longest
 * CONTIGUOUS PREFIX of acked deliveries (last acked offset of the prefix + 1). It never passes an unsettled
 * offset and never moves back. The offsets acked above it are kept (`ackedAbove`) to travel in the commit's
 * metadata (`offsets.ts`), so the next owner skips them.
 *
 * A nack does not settle anything here: the record is delivered again to this member, and the commit point
 * cannot pass it until it is acked (if this member stops first, the next owner gets it from the broker).
 */

/** The tracker of one partition. */
export interface OffsetTracker {
  /** Delivered offsets not yet in the committed prefix, ascending. */
  readonly pending: ReadonlyArray<number>
  /** The offsets of `pending` that are acked. */
  readonly acked: ReadonlySet<number>
  /** The end of the acked prefix (the offset to commit), once the prefix is not empty. */
  readonly prefixEnd: number | undefined
  /** The first offset ever delivered. */
  readonly first: number | undefined
  /** Highest delivered offset + 1: records fetched again below it are not delivered twice. */
  readonly next: number | undefined
  /** Bumped by every ack that changed something (commits are sent only when it moved). */
  readonly version: number
}

/** A tracker with nothing delivered. */
export const empty: OffsetTracker = {
  pending: [],
  acked: new Set(),
  prefixEnd: undefined,
  first: undefined,
  next: undefined,
  version: 0
}

/** Whether `offset` is new to the tracker (above everything delivered so far). */
export const isNew = (tracker: OffsetTracker, offset: number): boolean =>
  tracker.next === undefined || offset >= tracker.next

/** Records a delivery of `offset`; an offset that is not new is ignored. */
export const deliver = (tracker: OffsetTracker, offset: number): OffsetTracker =>
  isNew(tracker, offset)
    ? {
      ...tracker,
      pending: [...tracker.pending, offset],
      first: tracker.first ?? offset,
      next: offset + 1
    }
    : tracker

/**
 * Records deliveries of `offsets` at once (one copy of `pending` instead of one per offset); offsets that
 * are not new (at or below the highest delivered so far, in order) are ignored, as by {@link deliver}.
 */
export const deliverMany = (tracker: OffsetTracker, offsets: ReadonlyArray<number>): OffsetTracker => {
  const added: Array<number> = []
  let next = tracker.next
  for (const offset of offsets) {
    if (next !== undefined && offset < next) continue
    added.push(offset)
    next = offset + 1
  }
  if (added.length === 0) return tracker
  return { ...tracker, pending: tracker.pending.concat(added), first: tracker.first ?? added[0], next }
}

/** How many of the pending offsets at the front are acked. */
const ackedPrefixLength = (pending: ReadonlyArray<number>, acked: ReadonlySet<number>): number => {
  let n = 0
  while (n < pending.length && acked.has(pending[n]!)) n++
  return n
}

/**
 * Marks `offset` acked and moves the prefix over every acked offset at its front. Acking an offset that is
 * not pending (never delivered, or already in the prefix) changes nothing.
 */
export const ack = (tracker: OffsetTracker, offset: number): OffsetTracker => {
  if (tracker.acked.has(offset) || !isPending(tracker, offset)) return tracker
  const acked = new Set(tracker.acked).add(offset)
  const n = ackedPrefixLength(tracker.pending, acked)
  if (n === 0) return { ...tracker, acked, version: tracker.version + 1 }
  const moved = tracker.pending.slice(0, n)
  for (const o of moved) acked.delete(o)
  return {
    ...tracker,
    pending: tracker.pending.slice(n),
    acked,
    prefixEnd: moved[n - 1]! + 1,
    version: tracker.version + 1
  }
}

/**
 * Marks every offset of `offsets` acked, as {@link ack} one after another would, with one copy of the
 * tracker's arrays for all of them (the runloop folds a partition's settlements of one turn at once).
 */
export const ackMany = (tracker: OffsetTracker, offsets: Iterable<number>): OffsetTracker => {
  let acked: Set<number> | undefined
  for (const offset of offsets) {
    if (tracker.acked.has(offset) || acked?.has(offset) === true || !isPending(tracker, offset)) continue
    acked ??= new Set(tracker.acked)
    acked.add(offset)
  }
  if (acked === undefined) return tracker
  const n = ackedPrefixLength(tracker.pending, acked)
  if (n === 0) return { ...tracker, acked, version: tracker.version + 1 }
  for (let i = 0; i < n; i++) acked.delete(tracker.pending[i]!)
  return {
    ...tracker,
    pending: tracker.pending.slice(n),
    acked,
    prefixEnd: tracker.pending[n - 1]! + 1,
    version: tracker.version + 1
  }
}

/** A nack settles nothing: the record comes again, and the commit point waits for it. */
export const nack = (tracker: OffsetTracker, _offset: number): OffsetTracker => tracker

const isPending = (tracker: OffsetTracker, offset: number): boolean => {
  const pending = tracker.pending
  // binary search: pending is ascending
  let lo = 0
  let hi = pending.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const at = pending[mid]!
    if (at === offset) return true
    if (at < offset) lo = mid + 1
    else hi = mid - 1
  }
  return false
}

/**
 * The offset to commit: the end of the acked prefix; before the prefix holds anything, the first pending
 * offset once something above it is acked (so the acked offsets travel in the metadata); else nothing.
 */
export const commitOffset = (tracker: OffsetTracker): number | undefined =>
  tracker.prefixEnd ?? (tracker.acked.size > 0 ? tracker.pending[0] : undefined)

/** The offsets acked above the commit offset, ascending. */
export const ackedAbove = (tracker: OffsetTracker): ReadonlyArray<number> =>
  tracker.pending.filter((offset) => tracker.acked.has(offset))

/** Delivered and not acked. */
export const outstanding = (tracker: OffsetTracker): number => tracker.pending.length - tracker.acked.size
