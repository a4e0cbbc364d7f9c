/**
 * The shared conformance suite: the definition of correct behaviour for a Switchyard broker. Every broker
 * (the in-memory one included) runs it against its real server; third-party adapters can run it too.
 *
 * Modelled on Watermill's universal pub/sub tests, gated by capability flags, plus the consumer-runtime
 * guarantees (dead letters on decode failure and exhausted retries, graceful drain, idempotency). Each
 * case uses fresh destinations; reads end on an expected count or an idle timeout that re-arms on every
 * message; duplicates are tolerated (deduplicated by id) unless the broker claims exactly-once.
 *
 * @since 0.1.0
 */
import { describe, layer } from "@effect/vitest"
import type { Effect, Layer } from "effect"
import { Duration } from "effect"
import type { Broker } from "../Broker.ts"
import type { Capabilities } from "../Capabilities.ts"
import * as Switchyard from "../Switchyard.ts"
import * as ConformanceCodec from "./internal/codec.ts"
import * as Contract from "./internal/contract.ts"
import * as DeadLetterOps from "./internal/deadLetterOps.ts"
import * as Harness from "./internal/harness.ts"
import * as Runtime from "./internal/runtime.ts"
import * as TypedPaths from "./internal/typedPaths.ts"

/**
 * How to run the suite for one broker.
 *
 * @category models
 * @since 0.1.0
 */
export interface Config {
  /** Shown in test names. */
  readonly name: string
  /** The broker under test; built once for the whole suite. */
  readonly layer: Layer.Layer<Broker, unknown>
  /** What the broker really promises: cases it cannot pass are not run, the others must pass. */
  readonly capabilities: Capabilities
  /** Prepares a fresh destination (for example creates a Kafka topic with several partitions). */
  readonly provision?: ((destination: string) => Effect.Effect<void, unknown, Broker>) | undefined
  /** Restarts the broker (stop, then start); enables the broker-restart case. */
  readonly restart?: Effect.Effect<void, unknown> | undefined
  /** Multiplies idle timeouts, for slow brokers (default 1). */
  readonly timeScale?: number | undefined
  /** Messages in the bulk cases (default 300). */
  readonly messageCount?: number | undefined
  /** Messages in the broker-restart case (default 10,000). */
  readonly restartMessageCount?: number | undefined
}

/**
 * Runs the suite in the current vitest file.
 *
 * @example
 * ```ts
 * import { Conformance } from "@switchyard/core/testing"
 * import { MemoryBroker } from "@switchyard/core"
 * Conformance.suite({ name: "memory", layer: MemoryBroker.layer(), capabilities: MemoryBroker.capabilities })
 * ```
 * @category running
 * @since 0.1.0
 */
export const suite = (config: Config): void => {
  const harness = Harness.make(config)
  const { capabilities, scale, idle, fresh, publish, open, readDeadLetters } = harness
  describe(`conformance: ${config.name}`, () => {
    layer(Switchyard.on(config.layer), { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
      ConformanceCodec.cases(it, { fresh, idle })
      Contract.register(it, harness)
      Runtime.register(it, harness)
      TypedPaths.register(it, { capabilities, scale, idle, fresh, publish, open, readDeadLetters })
      DeadLetterOps.register(it, { capabilities, scale, idle, fresh, open })
      Contract.registerRelease(it, harness)
    })
  })
}
