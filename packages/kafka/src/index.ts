/**
 * `@switchyard/kafka`: the Kafka (kafkajs) adapter of Switchyard.
 *
 * @since 0.1.0
 */
export * as KafkaBroker from "./KafkaBroker.ts"
export * as KafkaConnection from "./KafkaConnection.ts"
export * as KafkaTopology from "./KafkaTopology.ts"
export * as KafkaTransactions from "./KafkaTransactions.ts"
