/**
 * `KafkaConnection.Options` (resolved) as @platformatic/kafka client options: the same bootstrap list,
 * client id, timeouts, TLS, SASL and retries as the kafkajs backend, mapped to this client's names.
 */
import { Duration, Redacted } from "effect"
import { ConnectionOptions } from "@switchyard/core/adapter"
import type { BaseOptions, SASLOptions } from "@platformatic/kafka"
import type * as KafkaConnection from "../../KafkaConnection.ts"

const millis = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

const sasl = (options: KafkaConnection.Options): SASLOptions | undefined => {
  if (options.username === undefined) return undefined
  const username = options.username
  const password = options.password === undefined ? "" : Redacted.value(options.password)
  switch (options.saslMechanism ?? "plain") {
    case "plain":
      return { mechanism: "PLAIN", username, password }
    case "scram-sha-256":
      return { mechanism: "SCRAM-SHA-256", username, password }
    case "scram-sha-512":
      return { mechanism: "SCRAM-SHA-512", username, password }
  }
}

/** The client options every @platformatic/kafka client of a layer shares (`suffix` tells them apart). */
export const baseOptions = (resolved: KafkaConnection.Resolved, suffix: string): BaseOptions => {
  const o = resolved.options
  const tls = ConnectionOptions.nodeTls(o.tls)
  const auth = sasl(o)
  const retry = o.retry
  return {
    clientId: `${o.clientId ?? "switchyard"}-${suffix}`,
    bootstrapBrokers: [...o.brokers],
    connectTimeout: ConnectionOptions.connectTimeoutMillis(o),
    requestTimeout: millis(o.requestTimeout, 30_000),
    timeout: millis(o.requestTimeout, 30_000),
    metadataMaxAge: resolved.metadataMaxAge,
    // like kafkajs's defaults (5 retries from 300 ms) unless given
    retries: retry?.retries ?? 5,
    retryDelay: millis(retry?.initialRetryTime, 300),
    ...(tls !== undefined ? { tls: { ...tls } } : {}),
    ...(auth !== undefined ? { sasl: auth } : {})
  }
}
