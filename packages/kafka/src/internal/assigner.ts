/**
 * A partition assigner that honours each member's own subscription. kafkajs's round-robin assigner hands
 * every topic the leader knows to every member, which breaks when one group id is used by subscriptions on
 * different topics (Switchyard's `group` is per subscription, so that happens). Here each topic's
 * partitions go round-robin only to the members that subscribed to it; members are sorted so the result is
 * deterministic.
 *
 * @internal
 */
import { AssignerProtocol, type PartitionAssigner } from "kafkajs"

/** @internal */
export const SubscriptionAwareAssigner: PartitionAssigner = ({ cluster }) => ({
  name: "SwitchyardSubscriptionAware",
  version: 0,
  async assign({ members }) {
    const byTopic = new Map<string, Array<string>>()
    for (const member of members) {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata)
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
      const eligible = (byTopic.get(topic) ?? []).sort()
      const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b)
      partitions.forEach((partition, i) => {
        const memberId = eligible[i % eligible.length]!
        const own = assignment.get(memberId)!
        ;(own[topic] ??= []).push(partition)
      })
    }
    return [...assignment].map(([memberId, own]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: own, userData: Buffer.alloc(0) })
    }))
  },
  protocol({ topics }) {
    return {
      name: "SwitchyardSubscriptionAware",
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) })
    }
  }
})
