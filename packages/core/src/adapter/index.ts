/**
 * The adapter kit: what every broker adapter is built from, so that the same guarantees hold on every
 * broker. Import it from `@switchyard/core/adapter` when writing an adapter; applications do not need it.
 *
 * @since 0.2.0
 */
export * as IncomingEnvelope from "./IncomingEnvelope.ts"
export * as BrokerErrors from "./BrokerErrors.ts"
export * as DeliveryQueue from "./DeliveryQueue.ts"
export * as Provisioner from "./Provisioner.ts"
export * as Settlement from "./Settlement.ts"
export * as Supervisor from "./Supervisor.ts"
export * as ConnectionOptions from "./ConnectionOptions.ts"
