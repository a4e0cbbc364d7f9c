/**
 * Test helpers for `@switchyard/amqp`: a raw amqplib client (foreign producers, queue probes).
 *
 * @since 0.3.0
 */
export * as RawAmqp from "./RawAmqp.ts"
