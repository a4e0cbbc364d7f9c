/**
 * What a NATS server says about itself (`Broker.serverInfo`), from the connection's INFO and, on JetStream,
 * the account's JetStream usage.
 */
import type { JetStreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { type Broker, Errors } from "@switchyard/core"
import { Effect } from "effect"
import { redactUrl, subscribeError } from "./errors.ts"

const destination = "(server info)"

/** The connection's INFO block: server name and id, version, cluster, max payload, JetStream available. */
const fromInfo = (nc: NatsConnection): Effect.Effect<Record<string, string>, Errors.SubscribeError> =>
  Effect.suspend(() => {
    const info = nc.info
    if (info === undefined) {
      return Effect.fail(
        new Errors.SubscribeError({ destination, reason: Errors.reason("Unreachable", "not connected: the server sent no INFO") })
      )
    }
    return Effect.succeed({
      version: info.version,
      server_name: info.server_name,
      server_id: info.server_id,
      jetstream: String(info.jetstream === true),
      max_payload: String(info.max_payload),
      proto: String(info.proto),
      go: info.go,
      connected_to: redactUrl(nc.getServer()),
      ...(info.cluster !== undefined ? { cluster: info.cluster } : {}),
      ...(info.tls_required === true ? { tls: "required" } : {})
    })
  })

/** The server info of a core NATS broker (JetStream as the server announces it, `"true"` or `"false"`). */
export const core = (nc: NatsConnection): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.map(fromInfo(nc), ({ version, ...details }) => ({ product: "nats-server", version: version ?? "unknown", details }))

/** The server info of a JetStream broker, plus the account's JetStream usage (streams, consumers, API level). */
export const jetStream = (nc: NatsConnection, manager: JetStreamManager): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.gen(function*() {
    const { version, ...details } = yield* fromInfo(nc)
    const account = yield* Effect.tryPromise({
      try: () => manager.getAccountInfo(),
      catch: subscribeError(destination, "JetStream account info")
    })
    return {
      product: "nats-server",
      version: version ?? "unknown",
      details: {
        ...details,
        jetstream: "true",
        jetstream_streams: String(account.streams),
        jetstream_consumers: String(account.consumers),
        jetstream_api_level: String(account.api.level ?? "unknown"),
        ...(account.domain !== undefined ? { jetstream_domain: account.domain } : {})
      }
    }
  })
