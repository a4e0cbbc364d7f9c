/**
 * Switchyard for NATS: the JetStream and core NATS brokers, JetStream topology, request-reply, and a
 * JetStream KV store.
 *
 * @since 0.1.0
 */
export * as NatsBroker from "./NatsBroker.ts"
export * as NatsConnection from "./NatsConnection.ts"
export * as NatsKeyValueStore from "./NatsKeyValueStore.ts"
export * as NatsRpc from "./NatsRpc.ts"
export * as NatsTopology from "./NatsTopology.ts"
