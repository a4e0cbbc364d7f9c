/**
 * The sticky, subscription-aware split of `../assigner.ts` as a @platformatic/kafka partition assigner. The
 * client's default (round robin) deals every topic the leader knows to every member, which breaks when one
 * group id is used by subscriptions on different topics (Switchyard's `group` is per subscription): a member
 * would own partitions of a topic it never fetches. Here each member's subscription and owned partitions
 * (its protocol user data, `encodeOwned`) go through the same pure `assign` as the kafkajs backend.
 *
 * The protocol has its own name: a group cannot hold members of both backends at the same time (the
 * clients encode the member metadata differently); Kafka refuses such a join (INCONSISTENT_GROUP_PROTOCOL).
 */
import type { GroupPartitionsAssigner, GroupPartitionsAssignments, GroupProtocolsMetadataCallback } from "@platformatic/kafka"
import { assign, decodeOwned, encodeOwned, type Member, type Owned } from "../assigner.ts"

/** The group protocol of this backend's members. */
export const protocol = { name: "SwitchyardSticky-platformatic", version: 0 } as const

/** The user data of this member: what it owns now. */
export const protocolsMetadata = (owned: () => Owned): GroupProtocolsMetadataCallback => () => encodeOwned(owned())

/** The leader's split of every member's subscription. */
export const partitionAssigner: GroupPartitionsAssigner = (_current, members, _topics, metadata) => {
  const decoded: Array<Member> = [...members.values()].map((member) => ({
    memberId: member.memberId,
    topics: member.topics ?? [],
    owned: decodeOwned(Buffer.isBuffer(member.metadata) ? member.metadata : undefined)
  }))
  const assignment = assign(decoded, (topic) => {
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0
    return Array.from({ length: count }, (_, i) => i)
  })
  return [...assignment].map(([memberId, own]): GroupPartitionsAssignments => ({
    memberId,
    assignments: new Map(Object.entries(own).map(([topic, partitions]) => [topic, { topic, partitions: [...partitions] }]))
  }))
}
