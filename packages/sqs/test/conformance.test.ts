/**
 * The shared conformance suite against a real SQS server (ElasticMQ, started for this file; restarted by the
 * broker-restart case, its messages kept in H2).
 */
import { Conformance } from "@switchyard/core/testing"
import { Context, Effect, Layer } from "effect"
import { SqsBroker } from "../src/index.ts"
import { options, server, TestServer } from "./helpers.ts"

let restart: Effect.Effect<void, unknown> | undefined

const brokerLayer = Layer.unwrap(
  Effect.map(TestServer, (s) => SqsBroker.layer(options(s.endpoint)))
).pipe(
  Layer.provide(server.pipe(Layer.tap((ctx) => Effect.sync(() => (restart = Context.get(ctx, TestServer).restart)))))
)

Conformance.suite({
  name: "sqs",
  layer: brokerLayer,
  capabilities: SqsBroker.capabilities,
  timeScale: 2,
  restart: Effect.suspend(() => (restart === undefined ? Effect.die("no server") : restart))
})
