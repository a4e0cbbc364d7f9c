/**
 * `@switchyard/kafka`: the Kafka (kafkajs) adapter of Switchyard.
 *
 * @since 0.1.0
 */
export * as KafkaAdmin from "./KafkaAdmin.ts"
export * as KafkaBroker from "./KafkaBroker.ts"
export * as KafkaClient from "./KafkaClient.ts"
export * as KafkaTransactions from "./KafkaTransactions.ts"
