/**
 * Test helpers for `@switchyard/amqp`: a private RabbitMQ node (stop and start it as a broker restart), and a raw amqplib
 * client (foreign producers, queue probes).
 *
 * @since 0.3.0
 */
export * as RabbitNode from "./RabbitNode.ts"
export * as RawAmqp from "./RawAmqp.ts"
