/**
 * What the RabbitMQ adapter can tell about a destination and the broker: a group's lag (its queue's depth)
 * and the server's product and version (the `connection.start` server properties).
 */
import type { Broker } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { Effect } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"
import * as AmqpTopology from "../AmqpTopology.ts"
import * as Provision from "./provision.ts"

/**
 * A group's lag: the ready messages of its queue `<destination>.<group>` (published, not yet delivered to a
 * member). AMQP 0-9-1 reports only ready messages (`queue.declare-ok`); deliveries members hold unacked are
 * not counted. A group that has no queue (it never subscribed) fails with reason `NotFound`.
 */
export const lag = (connection: AmqpConnection.AmqpConnectionShape) =>
(destination: string, group: string): Effect.Effect<number, Errors.SubscribeError> => {
  const queue = AmqpTopology.groupQueueName(destination, group)
  return connection.withChannel((channel) =>
    Provision.run(() => channel.checkQueue(queue)).pipe(
      Effect.map((info) => info.messageCount),
      Effect.mapError((reason) =>
        reason._tag === "NotFound"
          ? Errors.reason("NotFound", `group "${group}" has no queue "${queue}" on RabbitMQ (it never subscribed)`, reason.code)
          : Errors.reason(reason._tag, `checking queue "${queue}" failed: ${reason.message}`, reason.code)
      )
    )
  ).pipe(Effect.mapError((e) => new Errors.SubscribeError({ destination, reason: e.reason })))
}

const shown = ["cluster_name", "platform", "host"] as const

const text = (value: unknown): string | undefined => typeof value === "string" && value !== "" ? value : undefined

/** The server properties worth showing: the cluster, the Erlang platform, the host and the capabilities on. */
const detailsOf = (label: string, properties: Readonly<Record<string, unknown>>): Record<string, string> => {
  const details: Record<string, string> = { connection: label }
  for (const name of shown) {
    const value = text(properties[name])
    if (value !== undefined) details[name] = value
  }
  const capabilities = properties["capabilities"]
  if (typeof capabilities === "object" && capabilities !== null) {
    details["capabilities"] = Object.entries(capabilities).filter(([, on]) => on === true).map(([name]) => name).join(", ")
  }
  return details
}

/**
 * The server's product and version, from the server properties of the current connection; the details name the
 * cluster, the Erlang platform, the connection (without secrets) and the capabilities the server announced.
 */
export const serverInfo = (connection: AmqpConnection.AmqpConnectionShape): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  connection.current.pipe(
    Effect.mapError((e) => new Errors.SubscribeError({ destination: "", reason: e.reason })),
    Effect.map((live): Broker.ServerInfo => {
      const properties: Readonly<Record<string, unknown>> = live.model.connection.serverProperties
      return {
        product: text(properties["product"]) ?? "RabbitMQ",
        version: text(properties["version"]) ?? "unknown",
        details: detailsOf(connection.label, properties)
      }
    })
  )
