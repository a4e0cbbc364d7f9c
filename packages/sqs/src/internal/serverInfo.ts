/**
 * What SQS says about a destination: the lag of a queue is its approximate number of messages not yet deleted
 * (visible, in flight and delayed; SQS has no groups, so every group has the queue's lag). SQS does not tell
 * its product version: `serverInfo` names the endpoint and region.
 */
import { Errors } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import { Effect } from "effect"
import type { SqsConnectionShape } from "../SqsConnection.ts"
import type { SqsTopologyShape } from "../SqsTopology.ts"

/** The lag of a destination's queue. */
export const lag = (topology: SqsTopologyShape) => (destination: string, _group: string) =>
  topology.counts(destination).pipe(
    Effect.map((c) => c.visible + c.inFlight + c.delayed),
    Effect.mapError((e) => new Errors.SubscribeError({ destination, reason: e.reason }))
  )

/** What the endpoint is (SQS does not report a version). */
export const serverInfo = (connection: SqsConnectionShape): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.promise(() => connection.client.config.region()).pipe(
    Effect.map((region): Broker.ServerInfo => ({
      product: "Amazon SQS API",
      version: "unknown",
      details: { endpoint: connection.endpoint, region }
    }))
  )
