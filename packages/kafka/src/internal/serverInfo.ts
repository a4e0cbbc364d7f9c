/**
 * `Broker.serverInfo` and `Broker.lag` for Kafka: what the cluster says about itself and about a group,
 * from the admin client.
 */
import { Effect } from "effect"
import type { Broker, Errors } from "@switchyard/core"
import type { KafkaTopology } from "../KafkaTopology.ts"
import { subscribeError } from "./errors.ts"
import { decodeAcked } from "./offsets.ts"

/**
 * Records of `destination` that `group` has not consumed: per partition, the end offset minus the
 * committed offset (from the earliest offset when the group committed nothing there), less the records
 * acknowledged above the commit that the commit's metadata lists (see `offsets.ts`).
 */
export const lag = (admin: KafkaTopology["Service"]) => (destination: string, group: string): Effect.Effect<number, Errors.SubscribeError> =>
  admin.describe(destination).pipe(
    Effect.mapError((e) => subscribeError(destination, e)),
    Effect.andThen(Effect.tryPromise({
      try: () =>
        Promise.all([
          admin.admin.fetchTopicOffsets(destination),
          admin.admin.fetchOffsets({ groupId: group, topics: [destination] })
        ]),
      catch: (cause) => subscribeError(destination, cause, "fetching offsets failed")
    })),
    Effect.map(([ends, offsets]) => {
      const committed = new Map((offsets[0]?.partitions ?? []).map((p) => [p.partition, p] as const))
      let total = 0
      for (const end of ends) {
        const high = Number(end.high)
        const low = Number(end.low)
        const entry = committed.get(end.partition)
        const at = entry === undefined ? -1 : Number(entry.offset)
        if (at < 0) {
          total += Math.max(0, high - low)
          continue
        }
        let acked = 0
        for (const offset of decodeAcked(at, entry?.metadata)) if (offset < high) acked++
        total += Math.max(0, high - Math.max(at, low) - acked)
      }
      return total
    })
  )

/**
 * What the cluster says about itself. kafkajs does not expose the brokers' software version (neither
 * DescribeCluster nor its ApiVersions exchange carries it), so `version` is `"unknown"`; the details give
 * the cluster id, the brokers and the controller.
 */
export const serverInfo = (admin: KafkaTopology["Service"]): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.tryPromise({
    try: () => admin.admin.describeCluster(),
    catch: (cause) => subscribeError("(cluster)", cause, "describeCluster failed")
  }).pipe(Effect.map((cluster): Broker.ServerInfo => ({
    product: "Apache Kafka",
    version: "unknown",
    details: {
      clusterId: cluster.clusterId,
      brokers: cluster.brokers.map((b) => `${b.nodeId}@${b.host}:${b.port}`).join(","),
      controller: cluster.controller === null ? "none" : String(cluster.controller)
    }
  })))
