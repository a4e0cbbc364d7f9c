/**
 * The shared conformance suite against a real Kafka broker, on the @platformatic/kafka backend
 * (`KafkaPlatformatic.layer`). Like conformance.test.ts, this file starts its own embedded broker (so the
 * broker-restart case does not disturb the other test files); with `KAFKA_BROKERS` set it runs against that
 * cluster instead, without the restart case.
 */
import { Conformance } from "@switchyard/core/testing"
import { Context, Effect, Layer } from "effect"
import { KafkaPlatformatic, KafkaTopology } from "../src/index.ts"
import { EmbeddedKafka } from "../src/testing/index.ts"
import { testOptions } from "./helpers.ts"

const external = process.env["KAFKA_BROKERS"]

class TestCluster extends Context.Service<TestCluster, { readonly bootstrap: string }>()("test/TestCluster") {}

let embedded: EmbeddedKafka.EmbeddedKafka | undefined
let admin: KafkaTopology.KafkaTopology["Service"] | undefined

const cluster = external !== undefined && external !== ""
  ? Layer.succeed(TestCluster, { bootstrap: external })
  : Layer.effect(
    TestCluster,
    EmbeddedKafka.start().pipe(Effect.tap((k) => Effect.sync(() => (embedded = k))), Effect.orDie)
  )

const brokerLayer = Layer.unwrap(
  Effect.map(TestCluster, (c) =>
    KafkaPlatformatic.layer(testOptions({ brokers: [c.bootstrap], defaultPartitions: 3 })).pipe(
      Layer.tap((ctx) => Effect.sync(() => (admin = Context.get(ctx, KafkaTopology.KafkaTopology))))
    ))
).pipe(Layer.provide(cluster))

Conformance.suite({
  name: "kafka (@platformatic/kafka)",
  layer: brokerLayer,
  capabilities: KafkaPlatformatic.capabilities,
  provision: (destination) =>
    Effect.suspend(() =>
      admin === undefined ? Effect.die("admin not ready") : admin.createTopics([{ topic: destination, partitions: 4 }])
    ),
  ...(external !== undefined && external !== ""
    ? {}
    : { restart: Effect.suspend(() => (embedded === undefined ? Effect.die("no embedded broker") : embedded.restart)) })
})
