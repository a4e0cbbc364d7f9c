/**
 * Vitest global setup: starts one real Kafka broker for the whole `kafka` project (or uses the cluster in
 * `KAFKA_BROKERS`), provides its bootstrap address as `kafkaBrokers`, and stops it at teardown. A failure to
 * start fails the run loudly.
 */
import { Effect, Exit, Scope } from "effect"
import type { TestProject } from "vitest/node"
import { EmbeddedKafka } from "../src/testing/index.ts"

declare module "vitest" {
  export interface ProvidedContext {
    kafkaBrokers: string
    /** The embedded broker's SASL_PLAINTEXT listener ("" with KAFKA_BROKERS: the SASL test starts its own). */
    kafkaSaslBrokers: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env["KAFKA_BROKERS"]
  if (external !== undefined && external !== "") {
    project.provide("kafkaBrokers", external)
    project.provide("kafkaSaslBrokers", "")
    return async () => {}
  }
  const scope = Effect.runSync(Scope.make())
  const kafka = await Effect.runPromise(EmbeddedKafka.start({ sasl: true }).pipe(Scope.provide(scope)))
  project.provide("kafkaBrokers", kafka.bootstrap)
  project.provide("kafkaSaslBrokers", kafka.saslBootstrap ?? "")
  return async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
