/**
 * Switchyard for NATS: core NATS and JetStream brokers, request-reply, and a JetStream KV store.
 *
 * @since 0.1.0
 */
export * as CoreNats from "./CoreNats.ts"
export * as JetStream from "./JetStream.ts"
export * as NatsBroker from "./NatsBroker.ts"
export * as NatsConnection from "./NatsConnection.ts"
export * as NatsKeyValueStore from "./NatsKeyValueStore.ts"
export * as NatsRpc from "./NatsRpc.ts"
