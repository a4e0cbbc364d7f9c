/**
 * The demo's broker switch: `--broker memory|amqp|nats|kafka|sqs|redis` (or `SWITCHYARD_BROKER`). Every choice
 * gives the same services — `Broker`, `Publisher`, `Subscriber` — so the pipeline code never changes.
 *
 * - memory: the in-memory broker (default);
 * - amqp: RabbitMQ from `AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672);
 * - nats: NATS JetStream from `NATS_SERVERS` (default nats://127.0.0.1:4222);
 * - kafka: `KAFKA_BROKERS`, or, when unset, a single-node Kafka started from Maven Central jars for the run;
 * - sqs: `SQS_ENDPOINT` (and the other `SQS_*` variables), or, when unset, an ElasticMQ server started from
 *   Maven Central jars for the run;
 * - redis: Redis Streams from `REDIS_URL` (default redis://127.0.0.1:6379).
 */
import { AmqpBroker } from "@switchyard/amqp"
import { type Broker, type Errors, type Publisher, type Subscriber, Switchyard } from "@switchyard/core"
import { KafkaBroker } from "@switchyard/kafka"
import { EmbeddedKafka } from "@switchyard/kafka/testing"
import { NatsBroker } from "@switchyard/nats"
import { RedisBroker } from "@switchyard/redis"
import { SqsBroker } from "@switchyard/sqs"
import { ElasticMQ } from "@switchyard/sqs/testing"
import { Config, Effect, Layer, Option, Redacted } from "effect"

export const brokerNames = ["memory", "amqp", "nats", "kafka", "sqs", "redis"] as const
export type BrokerName = (typeof brokerNames)[number]

export const brokerName: Effect.Effect<BrokerName, Config.ConfigError> = Effect.gen(function*() {
  const index = process.argv.indexOf("--broker")
  const fromArgs = index === -1 ? undefined : process.argv[index + 1]
  const name = fromArgs ?? (yield* Config.Literals(brokerNames, "SWITCHYARD_BROKER").pipe(
    Config.withDefault("memory" as const)
  ))
  const known = brokerNames.find((n) => n === name)
  return known ?? (yield* Effect.die(`unknown broker "${name}": use ${brokerNames.join(", ")}`))
})

const kafka = Layer.unwrap(Effect.gen(function*() {
  const configured = yield* Config.option(Config.String("KAFKA_BROKERS"))
  if (Option.isSome(configured)) return KafkaBroker.layerConfig()
  yield* Effect.logInfo("KAFKA_BROKERS is not set: starting a single-node Kafka for this run (first run downloads its jars)")
  const embedded = yield* EmbeddedKafka.start()
  return KafkaBroker.layer({ brokers: [embedded.bootstrap], clientId: "switchyard-demo" })
}))

const sqs = Layer.unwrap(Effect.gen(function*() {
  const configured = yield* Config.option(Config.String("SQS_ENDPOINT"))
  if (Option.isSome(configured)) return SqsBroker.layerConfig()
  yield* Effect.logInfo("SQS_ENDPOINT is not set: starting an ElasticMQ server for this run (first run downloads its jars)")
  const server = yield* ElasticMQ.start()
  return SqsBroker.layer({
    endpoint: server.endpoint,
    region: "elasticmq",
    accessKeyId: "x",
    secretAccessKey: Redacted.make("x")
  })
}))

export const brokerLayer = (
  name: BrokerName
): Layer.Layer<
  Broker.Broker | Publisher.Publisher | Subscriber.Subscriber,
  Errors.ConnectionError | Config.ConfigError | EmbeddedKafka.EmbeddedKafkaError | ElasticMQ.ElasticMQError
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
    case "sqs":
      return Switchyard.on(sqs)
    case "redis":
      return Switchyard.on(RedisBroker.layerConfig())
  }
}
