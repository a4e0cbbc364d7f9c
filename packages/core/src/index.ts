/**
 * Switchyard core: broker-agnostic contracts, the consumer runtime and the in-memory broker.
 *
 * @since 0.1.0
 */
export * as Broker from "./Broker.ts"
export * as Capabilities from "./Capabilities.ts"
export * as Codec from "./Codec.ts"
export * as Consumer from "./Consumer.ts"
export * as DeadLetters from "./DeadLetters.ts"
export * as Envelope from "./Envelope.ts"
export * as Errors from "./Errors.ts"
export * as Headers from "./Headers.ts"
export * as Idempotency from "./Idempotency.ts"
export * as MemoryBroker from "./MemoryBroker.ts"
export * as Publisher from "./Publisher.ts"
export * as Router from "./Router.ts"
export * as Subscriber from "./Subscriber.ts"
export * as Switchyard from "./Switchyard.ts"
export * as Telemetry from "./Telemetry.ts"
export * as Topic from "./Topic.ts"
