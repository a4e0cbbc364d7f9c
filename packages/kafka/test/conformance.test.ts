/**
 * The shared conformance suite against a real Kafka broker, on the default (kafkajs) backend; see
 * `fixtures/conformance.ts` (its own embedded broker, or `KAFKA_BROKERS` without the restart case).
 */
import { KafkaBroker } from "../src/index.ts"
import { kafkaConformance } from "./fixtures/conformance.ts"

kafkaConformance("kafka", KafkaBroker.capabilities, KafkaBroker.layer)
