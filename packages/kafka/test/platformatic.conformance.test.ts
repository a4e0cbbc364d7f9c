/**
 * The shared conformance suite against a real Kafka broker, on the @platformatic/kafka backend
 * (`KafkaPlatformatic.layer`); see `fixtures/conformance.ts` (its own embedded broker, or `KAFKA_BROKERS`
 * without the restart case).
 */
import { KafkaPlatformatic } from "../src/index.ts"
import { kafkaConformance } from "./fixtures/conformance.ts"

kafkaConformance("kafka (@platformatic/kafka)", KafkaPlatformatic.capabilities, KafkaPlatformatic.layer)
