/**
 * Test helpers for messages Switchyard did not write: the raw nats.js probes of `@switchyard/nats/testing`
 * on the test server, and bounded waits on counts.
 */
import { TestKit } from "@switchyard/core/testing"
import type { Duration, Effect } from "effect"
import { NatsProbes } from "../src/testing/index.ts"
import { servers } from "./helpers.ts"

export const { manager, publishCore, publishJetStream, storedCount } = NatsProbes
export type RawMessage = NatsProbes.RawMessage

/** A raw nats.js connection to the test server for the scope, drained at its end. */
export const rawConnection = NatsProbes.rawConnection(servers)

/**
 * Waits until `check` holds, polling every 100 ms, for at most `within`; then returns the last observed
 * value either way (the caller asserts on it, so a timeout shows the count that was reached).
 */
export const eventually = <A, E = never, R = never>(
  observe: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  within: Duration.Input = "20 seconds"
) => TestKit.eventually(observe, check, { within, interval: "100 millis" })

export const utf8 = new TextEncoder()
