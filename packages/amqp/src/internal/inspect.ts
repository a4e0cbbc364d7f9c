/**
 * What the RabbitMQ adapter can tell about a destination and the broker: a group's lag (its queue's depth)
 * and the server's product and version (the `connection.start` server properties).
 *
 * @internal
 */
import type { Broker } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { Effect } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"
import * as Topology from "../Topology.ts"
import * as AmqpErrors from "./errors.ts"

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * A group's lag: the ready messages of its queue `<destination>.<group>` (published, not yet delivered to a
 * member). AMQP 0-9-1 reports only ready messages (`queue.declare-ok`); deliveries members hold unacked are
 * not counted. A group that has no queue (it never subscribed) fails with kind `NotFound`.
 */
export const lag = (connection: AmqpConnection.AmqpConnectionShape) =>
(destination: string, group: string): Effect.Effect<number, Errors.SubscribeError> => {
  const queue = Topology.groupQueueName(destination, group)
  const fail = (reason: string, kind: Errors.ErrorKind) => new Errors.SubscribeError({ destination, reason, kind })
  return connection.current.pipe(
    Effect.flatMap(connection.openChannel),
    Effect.mapError((e) => fail(e.reason, e.kind ?? "Unknown")),
    Effect.flatMap((channel) =>
      Effect.tryPromise({
        try: () => channel.checkQueue(queue),
        catch: (e) =>
          AmqpErrors.classify(e) === "NotFound"
            ? fail(`group "${group}" has no queue "${queue}" on RabbitMQ (it never subscribed)`, "NotFound")
            : fail(`checking queue "${queue}" failed: ${messageOf(e)}`, AmqpErrors.classify(e))
      }).pipe(
        Effect.map((info) => info.messageCount),
        Effect.ensuring(Effect.promise(() => channel.close().catch(() => {})))
      )
    )
  )
}

const shown = ["cluster_name", "platform", "host"] as const

/**
 * The server's product and version, from the server properties of the current connection; the details name the
 * cluster, the Erlang platform, the connection (without secrets) and the capabilities the server announced.
 */
export const serverInfo = (connection: AmqpConnection.AmqpConnectionShape): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  connection.current.pipe(
    Effect.mapError((e) => new Errors.SubscribeError({ destination: "", reason: e.reason, kind: e.kind ?? "Unknown" })),
    Effect.map((live): Broker.ServerInfo => {
      const properties: Readonly<Record<string, unknown>> = live.model.connection.serverProperties
      const details: Record<string, string> = { connection: connection.label }
      for (const name of shown) {
        const value = properties[name]
        if (typeof value === "string" && value !== "") details[name] = value
      }
      const capabilities = properties["capabilities"]
      if (typeof capabilities === "object" && capabilities !== null) {
        details["capabilities"] = Object.entries(capabilities).filter(([, on]) => on === true).map(([name]) => name).join(", ")
      }
      const product = properties["product"]
      const version = properties["version"]
      return {
        product: typeof product === "string" && product !== "" ? product : "RabbitMQ",
        version: typeof version === "string" && version !== "" ? version : "unknown",
        details
      }
    })
  )
