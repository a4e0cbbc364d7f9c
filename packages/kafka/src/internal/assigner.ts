/**
 * A sticky, subscription-aware partition assigner.
 *
 * - Subscription-aware: kafkajs's round-robin assigner hands every topic the leader knows to every member,
 *   which breaks when one group id is used by subscriptions on different topics (Switchyard's `group` is per
 *   subscription, so that happens). Here a topic's partitions go only to members subscribed to it.
 * - Sticky: each member reports the partitions it owns (protocol user data); the leader keeps them where
 *   they are as far as a balanced split allows and moves only the excess, so a member joining or leaving
 *   moves as few partitions as possible (fewer handovers = fewer redeliveries).
 *
 * The split itself (`assign`) is a pure function, property-tested; the kafkajs assigner wraps it.
 */
import { Option, Schema } from "effect"
import { AssignerProtocol, type PartitionAssigner } from "kafkajs"

const NAME = "SwitchyardSticky"

/** The partitions a member owns, per topic (its protocol user data). */
export type Owned = Readonly<Record<string, ReadonlyArray<number>>>

const OwnedJson = Schema.fromJsonString(Schema.Record(Schema.String, Schema.Array(Schema.Int)))
const decodeOwnedJson = Schema.decodeUnknownOption(OwnedJson)

/** A member's user data; anything that is not what {@link encodeOwned} wrote counts as owning nothing. */
export const decodeOwned = (userData: Buffer | undefined | null): Owned =>
  userData === undefined || userData === null || userData.length === 0
    ? {}
    : Option.getOrElse(decodeOwnedJson(userData.toString("utf8")), () => ({}))

/** The user data of a member owning `owned`. */
export const encodeOwned = (owned: Owned): Buffer => Buffer.from(JSON.stringify(owned), "utf8")

/** One member as the group leader sees it: its topics and what it owns. */
export interface Member {
  readonly memberId: string
  readonly topics: ReadonlyArray<string>
  readonly owned: Owned
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** One topic's split: owners keep what their quota allows, the rest is dealt to whoever is short. */
const assignTopic = (
  topic: string,
  partitions: ReadonlyArray<number>,
  subscribers: ReadonlyArray<Member>
): ReadonlyMap<string, ReadonlyArray<number>> => {
  const sorted = [...partitions].sort((a, b) => a - b)
  const valid = new Set(sorted)
  const claimed = new Set<number>()
  // current owners first (more owned first), so the larger quotas go to those already holding more
  const current = new Map<string, Array<number>>()
  for (const member of subscribers) {
    const mine = (member.owned[topic] ?? []).filter((p) => valid.has(p) && !claimed.has(p))
    mine.forEach((p) => claimed.add(p))
    current.set(member.memberId, [...new Set(mine)].sort((a, b) => a - b))
  }
  const eligible = [...current.keys()].sort((a, b) => current.get(b)!.length - current.get(a)!.length || byId(a, b))
  const result = new Map<string, Array<number>>(eligible.map((m) => [m, []]))
  if (eligible.length === 0) return result
  const base = Math.floor(sorted.length / eligible.length)
  const extra = sorted.length % eligible.length
  const quota = new Map(eligible.map((m, i) => [m, base + (i < extra ? 1 : 0)]))
  const taken = new Set<number>()
  for (const memberId of eligible) {
    for (const p of current.get(memberId)!) {
      if (result.get(memberId)!.length < quota.get(memberId)!) {
        result.get(memberId)!.push(p)
        taken.add(p)
      }
    }
  }
  const free = sorted.filter((p) => !taken.has(p))
  for (const memberId of eligible) {
    const own = result.get(memberId)!
    while (own.length < quota.get(memberId)! && free.length > 0) own.push(free.shift()!)
    own.sort((a, b) => a - b)
  }
  return result
}

/**
 * The assignment of every member: per topic, its partitions split as evenly as possible among the members
 * subscribed to it (the sizes differ by at most one), each partition to exactly one of them, keeping every
 * owner's partitions up to its quota.
 */
export const assign = (
  members: ReadonlyArray<Member>,
  partitionsOf: (topic: string) => ReadonlyArray<number>
): ReadonlyMap<string, Readonly<Record<string, ReadonlyArray<number>>>> => {
  const assignment = new Map<string, Record<string, ReadonlyArray<number>>>(members.map((m) => [m.memberId, {}]))
  const topics = [...new Set(members.flatMap((m) => m.topics))]
  for (const topic of topics) {
    const subscribers = members.filter((m) => m.topics.includes(topic))
    for (const [memberId, own] of assignTopic(topic, partitionsOf(topic), subscribers)) {
      if (own.length > 0) assignment.get(memberId)![topic] = own
    }
  }
  return assignment
}

/**
 * The kafkajs assigner.
 *
 * @param owned the partitions this member owns now, per topic (read at each join)
 */
export const makeAssigner = (owned: () => Owned): PartitionAssigner => ({ cluster }) => ({
  name: NAME,
  version: 1,
  async assign({ members }) {
    const decoded: Array<Member> = members.map((member) => {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata)
      return { memberId: member.memberId, topics: metadata?.topics ?? [], owned: decodeOwned(metadata?.userData) }
    })
    await cluster.addMultipleTargetTopics([...new Set(decoded.flatMap((m) => m.topics))])
    const assignment = assign(decoded, (topic) => cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId))
    return [...assignment].map(([memberId, own]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 1,
        assignment: Object.fromEntries(Object.entries(own).map(([t, ps]) => [t, [...ps]])),
        userData: Buffer.alloc(0)
      })
    }))
  },
  protocol({ topics }) {
    return {
      name: NAME,
      metadata: AssignerProtocol.MemberMetadata.encode({
        version: 1,
        topics,
        userData: encodeOwned(owned())
      })
    }
  }
})
