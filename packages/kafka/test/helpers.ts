import { Duration, Effect, Stream } from "effect"
import type { Broker, Envelope } from "@switchyard/core"
import { inject } from "vitest"
import { KafkaBroker } from "../src/index.ts"

export const brokers = (): string => inject("kafkaBrokers")

/** Fast consumer-group timings for tests (6 s is the default broker floor for the session timeout). */
export const testOptions = (extra: Partial<KafkaBroker.Options> = {}): KafkaBroker.Options => ({
  brokers: [brokers()],
  clientId: "switchyard-test",
  defaultPartitions: 4,
  consumer: {
    sessionTimeout: "6 seconds",
    heartbeatInterval: "500 millis",
    rebalanceTimeout: "6 seconds",
    commitInterval: "50 millis",
    drainTimeout: "3 seconds"
  },
  ...extra
})

export const testLayer = (extra: Partial<KafkaBroker.Options> = {}) => KafkaBroker.layer(testOptions(extra))

export const unique = (name: string): string => `${name}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const message = (i: number, overrides: Partial<Envelope.OutgoingMessage> = {}): Envelope.OutgoingMessage => ({
  id: `m-${i}`,
  key: `k-${i % 16}`,
  headers: {},
  timestamp: 1_700_000_000_000 + i,
  contentType: "text/plain",
  payload: encoder.encode(`payload-${i}`),
  correlationId: undefined,
  causationId: undefined,
  ...overrides
})

export const text = (payload: Uint8Array): string => decoder.decode(payload)

/** Takes `n` deliveries (or fails after `timeout`), applying `onDelivery` to each. */
export const take = (
  subscription: Broker.Subscription,
  n: number,
  timeout: Duration.Input = "30 seconds",
  onDelivery: (d: Broker.RawDelivery) => Effect.Effect<unknown, unknown> = (d) => d.ack
) =>
  subscription.deliveries.pipe(
    Stream.mapEffect((d) => onDelivery(d).pipe(Effect.as(d))),
    Stream.take(n),
    Stream.runCollect,
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.fail(new Error(`did not receive ${n} deliveries within ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
    })
  )

/** Collects whatever arrives within `window` of quiet (idle timeout re-armed on every delivery is not needed for our counts). */
export const drainFor = (subscription: Broker.Subscription, window: Duration.Input, ack = true) =>
  subscription.deliveries.pipe(
    Stream.mapEffect((d) => (ack ? d.ack : Effect.void).pipe(Effect.as(d))),
    Stream.interruptWhen(Effect.sleep(window)),
    Stream.runCollect
  )
