/**
 * Switchyard core: broker-agnostic contracts, the consumer runtime and the in-memory broker.
 *
 * @since 0.1.0
 */
export * as Broker from "./Broker.ts"
export * as Capabilities from "./Capabilities.ts"
export * as Codec from "./Codec.ts"
export * as Envelope from "./Envelope.ts"
export * as Errors from "./Errors.ts"
export * as Headers from "./Headers.ts"
export * as Topic from "./Topic.ts"
