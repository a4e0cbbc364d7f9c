/**
 * The in-memory broker's state and its synchronous operations: partition logs, consumer groups with
 * per-group offsets, members, claims. Every function here runs in one synchronous step of some fiber
 * (JavaScript runs one at a time), so each is atomic; waiting and time live in `MemoryBroker.ts`.
 */
import { Deferred, Exit } from "effect"
import type { OutgoingMessage } from "../../Envelope.ts"

/** One record of a partition log. */
export interface StoredRecord {
  readonly offset: number
  readonly message: OutgoingMessage
  readonly storedAt: number
}

/** One partition of a topic: its retained records and the offset of the first. */
export class PartitionLog {
  records: Array<StoredRecord> = []
  /** Offset of `records[0]`. */
  base = 0
  /**
   * Offsets removed by an operator's read (`Broker.browse`, then `ack`): gone for every reader. The log keeps
   * its offsets (a removed record is a tombstone until retention drops it), so groups skip it as acknowledged.
   */
  readonly removed = new Set<number>()
  get end(): number {
    return this.base + this.records.length
  }
  get(offset: number): StoredRecord | undefined {
    return this.removed.has(offset) ? undefined : this.records[offset - this.base]
  }
  /** The records still retained (not removed), in offset order. */
  retained(): Array<StoredRecord> {
    return this.removed.size === 0 ? this.records : this.records.filter((record) => !this.removed.has(record.offset))
  }
}

/** A topic: its partitions and the groups reading it. */
export class TopicState {
  readonly partitions: Array<PartitionLog>
  readonly groups = new Map<string, GroupState>()
  roundRobin = 0
  constructor(readonly name: string, partitionCount: number) {
    this.partitions = Array.from({ length: partitionCount }, () => new PartitionLog())
  }
}

/** A nacked offset due again at `at`. */
export interface Redelivery {
  readonly offset: number
  readonly at: number
}

/**
 * One delivery of an offset, held by a member until settled: what `collect` hands out and what `settle`
 * identifies (a settlement of an earlier delivery of the offset, or of an older generation, is ignored).
 */
export class Claim {
  constructor(
    readonly member: Member,
    readonly group: GroupState,
    readonly partition: number,
    readonly generation: number,
    readonly record: StoredRecord,
    readonly attempt: number
  ) {}
  get offset(): number {
    return this.record.offset
  }
}

/** A group's position in one partition. */
export class GroupPartition {
  /**
   * All offsets below `committed` are acknowledged. Never below the log's `base`: retention raises it.
   */
  committed: number
  /**
   * Next offset never delivered in this generation. It can fall behind `committed` (a rebalance resets it to
   * `committed`, then acks kept from an earlier generation let `committed` jump ahead): `collect` raises it.
   */
  next: number
  /** Bumped on every reassignment; settlements of older generations are ignored. */
  generation = 0
  owner: Member | undefined = undefined
  readonly acked = new Set<number>()
  /**
   * Unsettled deliveries by offset. The claim identifies the delivery, so a stale settlement is ignored, and
   * names the member holding it (after a handover it is not the partition's owner).
   */
  readonly inFlight = new Map<number, Claim>()
  redeliveries: Array<Redelivery> = []
  /** Delivery count per offset, for `attempt`. */
  readonly deliveries = new Map<number, number>()
  constructor(start: number) {
    this.committed = start
    this.next = start
  }
}

/** A consumer group of a topic. */
export class GroupState {
  readonly members: Array<Member> = []
  constructor(readonly partitions: Array<GroupPartition>) {}
}

/** One subscriber of a group. */
export class Member {
  inFlight = 0
  closed = false
  /** Set by `stopIntake`: the member takes nothing more but may still settle what it holds. */
  intakeStopped = false
  signal: Deferred.Deferred<void> = Deferred.makeUnsafe<void>()
  constructor(readonly prefetch: number) {}
  wake(): void {
    Deferred.doneUnsafe(this.signal, Exit.void)
  }
  /** A fresh signal, taken before looking at the state so that no wake-up is missed. */
  arm(): Deferred.Deferred<void> {
    if (Deferred.isDoneUnsafe(this.signal)) this.signal = Deferred.makeUnsafe<void>()
    return this.signal
  }
  /** Whether it may take one more delivery. */
  get hasRoom(): boolean {
    return this.inFlight < this.prefetch
  }
}

/** Moves `committed` over the contiguous prefix of acked offsets. */
const advanceCommitted = (gp: GroupPartition) => {
  while (gp.acked.delete(gp.committed)) gp.committed++
}

/** How many of a log's oldest records the retention limits drop at `now`. */
const expired = (log: PartitionLog, now: number, maxRecords: number | undefined, maxAgeMillis: number | undefined) => {
  let drop = maxRecords === undefined ? 0 : Math.max(0, log.records.length - maxRecords)
  if (maxAgeMillis !== undefined) {
    while (drop < log.records.length && now - log.records[drop]!.storedAt > maxAgeMillis) drop++
  }
  return drop
}

/** Drops what retention no longer keeps, and the groups' bookkeeping of it. */
export const applyRetention = (
  topic: TopicState,
  partition: number,
  now: number,
  limits: { readonly maxRecords: number | undefined; readonly maxAgeMillis: number | undefined }
) => {
  const log = topic.partitions[partition]!
  const drop = expired(log, now, limits.maxRecords, limits.maxAgeMillis)
  if (drop === 0) return
  log.records.splice(0, drop)
  log.base += drop
  for (const offset of log.removed) if (offset < log.base) log.removed.delete(offset)
  for (const group of topic.groups.values()) {
    const gp = group.partitions[partition]!
    if (gp.committed < log.base) gp.committed = log.base
    if (gp.next < log.base) gp.next = log.base
    gp.redeliveries = gp.redeliveries.filter((r) => r.offset >= log.base)
    // Bookkeeping of dropped records is of no use any more (acks below `committed` are never looked at).
    for (const offset of gp.acked) if (offset < log.base) gp.acked.delete(offset)
    for (const offset of gp.deliveries.keys()) if (offset < log.base) gp.deliveries.delete(offset)
  }
}

/** Members that take deliveries (not stopped). */
const activeMembers = (group: GroupState) => group.members.filter((member) => !member.intakeStopped)

/** Assigns the partitions over the active members; a reassigned partition restarts from `committed`. */
export const rebalance = (group: GroupState) => {
  const active = activeMembers(group)
  group.partitions.forEach((gp, index) => {
    const owner = active.length === 0 ? undefined : active[index % active.length]
    if (owner === gp.owner) return
    for (const claim of gp.inFlight.values()) {
      claim.member.inFlight--
      claim.member.wake()
    }
    // The new owner resumes from the committed offset: unacknowledged deliveries are redelivered.
    gp.owner = owner
    gp.generation++
    gp.inFlight.clear()
    gp.redeliveries = []
    // Offsets acked above the committed prefix stay acked: the new owner skips them.
    gp.next = gp.committed
    owner?.wake()
  })
}

/**
 * A member stops intake (graceful shutdown): its partitions go to the other active members at once, and what
 * it holds stays settleable by it (no new generation). What it nacks from now on, and what it had not taken,
 * the new owner gets. Without another active member it keeps its partitions but takes nothing more.
 */
export const handOver = (group: GroupState, leaving: Member) => {
  const active = activeMembers(group)
  if (active.length === 0) return
  const owned = group.partitions.filter((gp) => gp.owner === leaving)
  owned.forEach((gp, index) => {
    const owner = active[index % active.length]!
    gp.owner = owner
    owner.wake()
  })
}

/** What a closing member still holds in partitions it handed over comes back at once. */
export const reclaim = (group: GroupState, closing: Member) => {
  for (const gp of group.partitions) {
    if (gp.owner === closing) continue
    for (const [offset, claim] of gp.inFlight) {
      if (claim.member !== closing) continue
      gp.inFlight.delete(offset)
      closing.inFlight--
      gp.redeliveries.unshift({ offset, at: 0 })
      gp.owner?.wake()
    }
  }
}

/** Acks (`nackAt` undefined) or nacks for redelivery at `nackAt`; a settlement of an older delivery is ignored. */
export const settle = (claim: Claim, nackAt: number | undefined) => {
  const offset = claim.offset
  const gp = claim.group.partitions[claim.partition]!
  // Only the first settlement of this very delivery counts (not one of an earlier delivery of the offset).
  if (gp.generation !== claim.generation || gp.inFlight.get(offset) !== claim) return
  gp.inFlight.delete(offset)
  claim.member.inFlight--
  claim.member.wake()
  if (nackAt === undefined) {
    gp.deliveries.delete(offset)
    // An offset below `committed` (its record was dropped by retention meanwhile) is acknowledged already.
    if (offset >= gp.committed) gp.acked.add(offset)
    // This may move `committed` past `next` (after a rebalance); `collect` then skips ahead.
    advanceCommitted(gp)
  } else {
    gp.redeliveries.push({ offset, at: nackAt })
    gp.redeliveries.sort((a, b) => a.at - b.at)
  }
  gp.owner?.wake()
}

/** A removed record (see `PartitionLog.removed`) counts as acknowledged by every group. */
const skipRemoved = (gp: GroupPartition, offset: number) => {
  if (offset >= gp.committed) gp.acked.add(offset)
  advanceCommitted(gp)
}

/** Removes a record for every reader (an operator's `ack` of a browsed message). */
export const removeRecord = (topic: TopicState, partition: number, offset: number) => {
  const log = topic.partitions[partition]!
  if (offset < log.base || offset >= log.end || log.removed.has(offset)) return
  log.removed.add(offset)
  for (const group of topic.groups.values()) group.partitions[partition]!.owner?.wake()
}

/** Messages of a partition a group has not acknowledged (removed ones excluded). */
const partitionLag = (log: PartitionLog, gp: GroupPartition | undefined) => {
  let pending = 0
  for (let offset = Math.max(gp?.committed ?? log.base, log.base); offset < log.end; offset++) {
    if (!log.removed.has(offset) && gp?.acked.has(offset) !== true) pending++
  }
  return pending
}

/** Messages of a topic a group has not acknowledged. */
export const lagOf = (topic: TopicState | undefined, group: string): number => {
  if (topic === undefined) return 0
  const state = topic.groups.get(group)
  return topic.partitions.reduce((sum, log, partition) => sum + partitionLag(log, state?.partitions[partition]), 0)
}

/** Claims one delivery of `record` for `member`. */
const claim = (group: GroupState, partition: number, member: Member, record: StoredRecord): Claim => {
  const gp = group.partitions[partition]!
  const attempt = (gp.deliveries.get(record.offset) ?? 0) + 1
  gp.deliveries.set(record.offset, attempt)
  const claimed = new Claim(member, group, partition, gp.generation, record, attempt)
  gp.inFlight.set(record.offset, claimed)
  member.inFlight++
  return claimed
}

/** Takes the due redeliveries of a partition; returns when the next one is due (if later than `now`). */
const collectRedeliveries = (
  log: PartitionLog,
  group: GroupState,
  partition: number,
  member: Member,
  now: number,
  into: Array<Claim>
): number | undefined => {
  const gp = group.partitions[partition]!
  while (gp.redeliveries.length > 0 && member.hasRoom && gp.redeliveries[0]!.at <= now) {
    const due = gp.redeliveries.shift()!
    const record = log.get(due.offset)
    if (record === undefined) skipRemoved(gp, due.offset)
    else into.push(claim(group, partition, member, record))
  }
  const next = gp.redeliveries[0]?.at
  return next !== undefined && next > now ? next : undefined
}

/** Takes the records of a partition never delivered in this generation. */
const collectNew = (log: PartitionLog, group: GroupState, partition: number, member: Member, into: Array<Claim>) => {
  const gp = group.partitions[partition]!
  // Everything below `committed` is acknowledged: never deliver it again. `committed >= log.base` holds
  // (retention raises it), so this also skips records that retention dropped.
  if (gp.next < gp.committed) gp.next = gp.committed
  // Offsets acked above `committed` (kept across a rebalance) are skipped too.
  for (; gp.next < log.end && member.hasRoom; gp.next++) {
    const record = log.get(gp.next)
    if (record === undefined) skipRemoved(gp, gp.next)
    else if (!gp.acked.has(gp.next)) into.push(claim(group, partition, member, record))
  }
}

/** Collects what is ready for a member; returns the next redelivery time when something is due later. */
export const collect = (
  topic: TopicState,
  group: GroupState,
  member: Member,
  now: number
): { readonly batch: ReadonlyArray<Claim>; readonly nextDue: number | undefined } => {
  const batch: Array<Claim> = []
  let nextDue: number | undefined
  if (member.intakeStopped) return { batch, nextDue }
  group.partitions.forEach((gp, partition) => {
    if (gp.owner !== member) return
    const log = topic.partitions[partition]!
    const due = collectRedeliveries(log, group, partition, member, now, batch)
    if (due !== undefined && (nextDue === undefined || due < nextDue)) nextDue = due
    collectNew(log, group, partition, member, batch)
  })
  return { batch, nextDue }
}
