/**
 * The demo's broker switch: `--broker memory|amqp|nats|kafka` (or `SWITCHYARD_BROKER`). Every choice
 * gives the same services — `Broker`, `Publisher`, `Subscriber` — so the pipeline code never changes.
 *
 * - memory: the in-memory broker (default);
 * - amqp: RabbitMQ from `AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672);
 * - nats: NATS JetStream from `NATS_SERVERS` (default nats://127.0.0.1:4222);
 * - kafka: `KAFKA_BROKERS`, or, when unset, a single-node Kafka started from Maven Central jars for the run.
 */
import { AmqpBroker } from "@switchyard/amqp"
import { type Broker, type Errors, type Publisher, type Subscriber, Switchyard } from "@switchyard/core"
import { KafkaBroker } from "@switchyard/kafka"
import { EmbeddedKafka } from "@switchyard/kafka/testing"
import { NatsBroker } from "@switchyard/nats"
import { Config, Effect, Layer, Option } from "effect"

export type BrokerName = "memory" | "amqp" | "nats" | "kafka"

export const brokerName: Effect.Effect<BrokerName, Config.ConfigError> = Effect.gen(function*() {
  const index = process.argv.indexOf("--broker")
  const fromArgs = index === -1 ? undefined : process.argv[index + 1]
  const name = fromArgs ?? (yield* Config.Literals(["memory", "amqp", "nats", "kafka"], "SWITCHYARD_BROKER").pipe(
    Config.withDefault("memory" as const)
  ))
  switch (name) {
    case "memory":
    case "amqp":
    case "nats":
    case "kafka":
      return name
    default:
      return yield* Effect.die(`unknown broker "${name}": use memory, amqp, nats or kafka`)
  }
})

const kafka = Layer.unwrap(Effect.gen(function*() {
  const configured = yield* Config.option(Config.String("KAFKA_BROKERS"))
  if (Option.isSome(configured)) return KafkaBroker.layerConfig()
  yield* Effect.logInfo("KAFKA_BROKERS is not set: starting a single-node Kafka for this run (first run downloads its jars)")
  const embedded = yield* EmbeddedKafka.start()
  return KafkaBroker.layer({ brokers: [embedded.bootstrap], clientId: "switchyard-demo" })
}))

export const brokerLayer = (
  name: BrokerName
): Layer.Layer<
  Broker.Broker | Publisher.Publisher | Subscriber.Subscriber,
  Errors.ConnectionError | Config.ConfigError | EmbeddedKafka.EmbeddedKafkaError
> => {
  switch (name) {
    case "memory":
      return Switchyard.layerMemory()
    case "amqp":
      return Switchyard.on(AmqpBroker.layerConfig())
    case "nats":
      return Switchyard.on(NatsBroker.layerConfig())
    case "kafka":
      return Switchyard.on(kafka)
  }
}
