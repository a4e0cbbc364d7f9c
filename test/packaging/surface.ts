// Type-checked (not run) by the packaging test in the fresh project: every entry point of every package
// resolves to its declarations, under NodeNext and Bundler resolution, with skipLibCheck off.
import { AmqpBroker, AmqpConnection, AmqpRpc, Topology } from "@switchyard/amqp"
import * as Core from "@switchyard/core"
import { IncomingEnvelope } from "@switchyard/core/adapter"
import { Conformance, TestKit } from "@switchyard/core/testing"
import { KafkaAdmin, KafkaBroker, KafkaClient, KafkaTransactions } from "@switchyard/kafka"
import { EmbeddedKafka } from "@switchyard/kafka/testing"
import { CoreNats, JetStream, NatsBroker, NatsConnection, NatsKeyValueStore, NatsRpc } from "@switchyard/nats"
import { Effect, Layer } from "effect"

export const modules = [
  AmqpBroker, AmqpConnection, AmqpRpc, Topology, Core, IncomingEnvelope, Conformance, TestKit,
  KafkaAdmin, KafkaBroker, KafkaClient, KafkaTransactions, EmbeddedKafka,
  CoreNats, JetStream, NatsBroker, NatsConnection, NatsKeyValueStore, NatsRpc
] as const

// The in-memory stack provides what a program needs from the core.
export const live: Layer.Layer<Core.Broker.Broker | Core.Publisher.Publisher | Core.Subscriber.Subscriber> =
  Core.Switchyard.layerMemory()

export const settled: Effect.Effect<void> = TestKit.settle()
