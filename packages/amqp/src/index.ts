/**
 * Switchyard's RabbitMQ adapter (amqplib): the `Broker` contract plus native extras (connection,
 * topology as data, request-reply). Test helpers are in `@switchyard/amqp/testing`.
 *
 * @example
 * ```ts
 * import { AmqpBroker } from "@switchyard/amqp"
 * const BrokerLive = AmqpBroker.layerConfig() // reads AMQP_URL, AMQP_HOST, ...
 * ```
 * @since 0.1.0
 */
export * as AmqpBroker from "./AmqpBroker.ts"
export * as AmqpConnection from "./AmqpConnection.ts"
export * as AmqpRpc from "./AmqpRpc.ts"
export * as AmqpTopology from "./AmqpTopology.ts"
