// Type-checked (not run) by the packaging test in the fresh project: every entry point of every package
// resolves to its declarations, under NodeNext and Bundler resolution, with skipLibCheck off.
import { AmqpBroker, AmqpConnection, AmqpRpc, AmqpTopology } from "@switchyard/amqp"
import { RawAmqp } from "@switchyard/amqp/testing"
import * as Core from "@switchyard/core"
import { BrokerErrors, ConnectionOptions, DeliveryQueue, IncomingEnvelope, Provisioner, Settlement, Supervisor } from "@switchyard/core/adapter"
import { Conformance, PoisonCorpus, TestKit } from "@switchyard/core/testing"
import { KafkaBroker, KafkaConnection, KafkaTopology, KafkaTransactions } from "@switchyard/kafka"
import { EmbeddedKafka } from "@switchyard/kafka/testing"
import { NatsBroker, NatsConnection, NatsKeyValueStore, NatsRpc, NatsTopology } from "@switchyard/nats"
import { NatsProbes, PrivateNatsServer } from "@switchyard/nats/testing"
import { Effect, Layer } from "effect"

export const modules = [
  AmqpBroker, AmqpConnection, AmqpRpc, AmqpTopology, RawAmqp, Core,
  BrokerErrors, ConnectionOptions, DeliveryQueue, IncomingEnvelope, Provisioner, Settlement, Supervisor,
  Conformance, PoisonCorpus, TestKit,
  KafkaBroker, KafkaConnection, KafkaTopology, KafkaTransactions, EmbeddedKafka,
  NatsBroker, NatsConnection, NatsKeyValueStore, NatsRpc, NatsTopology, NatsProbes, PrivateNatsServer
] as const

// The in-memory stack provides what a program needs from the core.
export const live: Layer.Layer<Core.Broker.Broker | Core.Publisher.Publisher | Core.Subscriber.Subscriber> =
  Core.Switchyard.layerMemory()

export const settled: Effect.Effect<void> = TestKit.settle()
