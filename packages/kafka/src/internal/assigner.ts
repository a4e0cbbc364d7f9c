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
 * @internal
 */
import { AssignerProtocol, type PartitionAssigner } from "kafkajs"

const NAME = "SwitchyardSticky"

type Owned = Record<string, ReadonlyArray<number>>

const decodeOwned = (userData: Buffer | undefined | null): Owned => {
  if (userData === undefined || userData === null || userData.length === 0) return {}
  try {
    const parsed: unknown = JSON.parse(userData.toString("utf8"))
    return typeof parsed === "object" && parsed !== null ? (parsed as Owned) : {}
  } catch {
    return {}
  }
}

/**
 * @param owned the partitions this member owns now, per topic (read at each join)
 * @internal
 */
export const makeAssigner = (owned: () => Owned): PartitionAssigner => ({ cluster }) => ({
  name: NAME,
  version: 1,
  async assign({ members }) {
    const byTopic = new Map<string, Array<string>>()
    const ownedBy = new Map<string, Owned>()
    for (const member of members) {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata)
      ownedBy.set(member.memberId, decodeOwned(metadata?.userData))
      for (const topic of metadata?.topics ?? []) {
        const list = byTopic.get(topic) ?? []
        list.push(member.memberId)
        byTopic.set(topic, list)
      }
    }
    const topics = [...byTopic.keys()]
    await cluster.addMultipleTargetTopics(topics)
    const assignment = new Map<string, Record<string, Array<number>>>()
    for (const member of members) assignment.set(member.memberId, {})
    for (const topic of topics) {
      const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b)
      const valid = new Set(partitions)
      const claimed = new Set<number>()
      // current owners first (more owned first), so the larger quotas go to those already holding more
      const current = new Map<string, Array<number>>()
      for (const memberId of byTopic.get(topic) ?? []) {
        const mine = (ownedBy.get(memberId)?.[topic] ?? []).filter((p) => valid.has(p) && !claimed.has(p))
        mine.forEach((p) => claimed.add(p))
        current.set(memberId, [...mine].sort((a, b) => a - b))
      }
      const eligible = [...current.keys()].sort((a, b) =>
        current.get(b)!.length - current.get(a)!.length || (a < b ? -1 : a > b ? 1 : 0)
      )
      if (eligible.length === 0) continue
      const base = Math.floor(partitions.length / eligible.length)
      const extra = partitions.length % eligible.length
      const quota = new Map(eligible.map((m, i) => [m, base + (i < extra ? 1 : 0)]))
      const taken = new Set<number>()
      const result = new Map<string, Array<number>>(eligible.map((m) => [m, []]))
      for (const memberId of eligible) {
        for (const p of current.get(memberId)!) {
          if (result.get(memberId)!.length < quota.get(memberId)!) {
            result.get(memberId)!.push(p)
            taken.add(p)
          }
        }
      }
      const free = partitions.filter((p) => !taken.has(p))
      for (const memberId of eligible) {
        const own = result.get(memberId)!
        while (own.length < quota.get(memberId)! && free.length > 0) own.push(free.shift()!)
      }
      for (const [memberId, own] of result) {
        if (own.length > 0) assignment.get(memberId)![topic] = own.sort((a, b) => a - b)
      }
    }
    return [...assignment].map(([memberId, own]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: own, userData: Buffer.alloc(0) })
    }))
  },
  protocol({ topics }) {
    return {
      name: NAME,
      metadata: AssignerProtocol.MemberMetadata.encode({
        version: 1,
        topics,
        userData: Buffer.from(JSON.stringify(owned()), "utf8")
      })
    }
  }
})
