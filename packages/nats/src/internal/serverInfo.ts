/**
 * What a NATS server says about itself (`Broker.serverInfo`), from the connection's INFO and, on JetStream,
 * the account's JetStream usage.
 *
 * @internal
 */
import type { JetStreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import type { Broker } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import { Effect } from "effect"
import { reason } from "./envelope.ts"
import { kindOf, redactUrl } from "./errors.ts"

const destination = "(server info)"

/** The connection's INFO block: server name and id, version, cluster, max payload, JetStream available. */
const fromInfo = (nc: NatsConnection): Effect.Effect<Record<string, string>, Errors.SubscribeError> =>
  Effect.suspend(() => {
    const info = nc.info
    if (info === undefined) {
      return Effect.fail(
        new Errors.SubscribeError({ destination, reason: "not connected: the server sent no INFO", kind: "Unreachable" })
      )
    }
    const details: Record<string, string> = {
      version: info.version,
      server_name: info.server_name,
      server_id: info.server_id,
      jetstream: String(info.jetstream === true),
      max_payload: String(info.max_payload),
      proto: String(info.proto),
      go: info.go,
      connected_to: redactUrl(nc.getServer())
    }
    if (info.cluster !== undefined) details["cluster"] = info.cluster
    if (info.tls_required === true) details["tls"] = "required"
    return Effect.succeed(details)
  })

/**
 * The server info of a core NATS broker (JetStream is reported as the server announces it, `"true"` or
 * `"false"`).
 */
export const core = (nc: NatsConnection): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.map(fromInfo(nc), ({ version, ...details }) => ({
    product: "nats-server",
    version: version ?? "unknown",
    details
  }))

/** The server info of a JetStream broker, plus the account's JetStream usage (streams, consumers, API level). */
export const jetStream = (
  nc: NatsConnection,
  manager: JetStreamManager
): Effect.Effect<Broker.ServerInfo, Errors.SubscribeError> =>
  Effect.gen(function*() {
    const { version, ...details } = yield* fromInfo(nc)
    const account = yield* Effect.tryPromise({
      try: () => manager.getAccountInfo(),
      catch: (cause) =>
        new Errors.SubscribeError({ destination, reason: `JetStream account info: ${reason(cause)}`, kind: kindOf(cause), cause })
    })
    details["jetstream"] = "true"
    details["jetstream_streams"] = String(account.streams)
    details["jetstream_consumers"] = String(account.consumers)
    details["jetstream_api_level"] = String(account.api.level ?? "unknown")
    if (account.domain !== undefined) details["jetstream_domain"] = account.domain
    return { product: "nats-server", version: version ?? "unknown", details }
  })
