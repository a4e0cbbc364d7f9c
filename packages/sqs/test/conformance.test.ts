/**
 * The shared conformance suite against a real SQS server (ElasticMQ, started for this file, its messages kept
 * in H2), including the broker-restart case (two restarts of this file's private server while 10,000 messages
 * flow from parallel publishers).
 */
import { Conformance } from "@switchyard/core/testing"
import { Effect, Layer } from "effect"
import { SqsBroker } from "../src/index.ts"
import { options, server, TestServer } from "./helpers.ts"

let restart: Effect.Effect<void, unknown> | undefined

const brokerLayer = Layer.unwrap(
  Effect.map(TestServer, (s) => {
    restart = s.restart
    return SqsBroker.layer(options(s.endpoint))
  })
).pipe(
  Layer.provide(server)
)

Conformance.suite({
  name: "sqs",
  layer: brokerLayer,
  capabilities: SqsBroker.capabilities,
  timeScale: 2,
  restart: Effect.suspend(() => restart ?? Effect.die("no server"))
})
