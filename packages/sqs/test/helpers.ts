/**
 * Shared test wiring: one real ElasticMQ per test file (or the SQS endpoint in `SQS_ENDPOINT`), the broker
 * layer on it, and a raw SDK client for messages written without Switchyard.
 */
import { SQSClient } from "@aws-sdk/client-sqs"
import type { Broker } from "@switchyard/core"
import { TestKit } from "@switchyard/core/testing"
import { Context, Effect, Layer, Redacted } from "effect"
import { SqsBroker, type SqsConnection, type SqsTopology } from "../src/index.ts"
import { ElasticMQ } from "../src/testing/index.ts"

const external = process.env["SQS_ENDPOINT"]

/** The server under test. */
export class TestServer extends Context.Service<TestServer, {
  readonly endpoint: string
  readonly restart: Effect.Effect<void, unknown>
  readonly raw: SQSClient
}>()("test/TestServer") {}

/** Starts ElasticMQ for the file (a failure fails the file loudly). */
export const server: Layer.Layer<TestServer> = Layer.effect(
  TestServer,
  Effect.gen(function*() {
    const started = external !== undefined && external !== ""
      ? { endpoint: external, restart: Effect.die("no restart against an external SQS") }
      : yield* ElasticMQ.start().pipe(Effect.orDie)
    const raw = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new SQSClient({ endpoint: started.endpoint, region: ElasticMQ.region, credentials: ElasticMQ.credentials })
      ),
      (c) => Effect.sync(() => c.destroy())
    )
    return { endpoint: started.endpoint, restart: started.restart, raw }
  })
)

/** Options of the broker under test. */
export const options = (endpoint: string, extra: Partial<SqsConnection.Options> = {}): SqsConnection.Options => ({
  endpoint,
  region: ElasticMQ.region,
  accessKeyId: ElasticMQ.credentials.accessKeyId,
  secretAccessKey: Redacted.make(ElasticMQ.credentials.secretAccessKey),
  waitTime: "2 seconds",
  defaultQueue: { visibilityTimeout: "10 seconds" },
  ...extra
})

/** The broker on the file's server (the server stays in the output for raw access and restarts). */
export const brokerOn = (
  extra: Partial<SqsConnection.Options> = {}
): Layer.Layer<Broker.Broker | SqsConnection.SqsConnection | SqsTopology.SqsTopology | TestServer> =>
  Layer.unwrap(Effect.map(TestServer, (s) => SqsBroker.layer(options(s.endpoint, extra)).pipe(Layer.orDie))).pipe(
    Layer.provideMerge(server)
  )

/** A fresh destination name. */
export const unique = (label: string): string => TestKit.uniqueName(`sqs.${label}`)
