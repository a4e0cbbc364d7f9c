/**
 * `@switchyard/kafka`: the Kafka adapter of Switchyard: kafkajs (`KafkaBroker`, the default) and
 * @platformatic/kafka (`KafkaPlatformatic`) backends of one `Broker` contract.
 *
 * @since 0.1.0
 */
export * as KafkaBroker from "./KafkaBroker.ts"
export * as KafkaConnection from "./KafkaConnection.ts"
export * as KafkaPlatformatic from "./KafkaPlatformatic.ts"
export * as KafkaTopology from "./KafkaTopology.ts"
export * as KafkaTransactions from "./KafkaTransactions.ts"
