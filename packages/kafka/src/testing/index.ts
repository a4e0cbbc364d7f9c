/**
 * Test helpers for `@switchyard/kafka`: a real embedded Kafka broker.
 *
 * @since 0.1.0
 */
export * as EmbeddedKafka from "./EmbeddedKafka.ts"
