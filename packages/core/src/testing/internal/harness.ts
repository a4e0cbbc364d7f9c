/**
 * What every group of conformance cases shares: the suite's configuration, fresh destinations, and the
 * reads and checks the cases are written with.
 */
import { assert } from "@effect/vitest"
import { Duration, Effect, Schema, Stream } from "effect"
import type { RawDelivery } from "../../Broker.ts"
import { Broker } from "../../Broker.ts"
import type { Capabilities } from "../../Capabilities.ts"
import { type Envelope, type OutgoingMessage, outgoing } from "../../Envelope.ts"
import type { Config } from "../Conformance.ts"
import { uniqueName } from "../TestKit.ts"

/** The payload of the suite's raw messages. */
export const Payload = Schema.Struct({ n: Schema.Number, key: Schema.String })
/** The payload of the suite's raw messages. */
export type Payload = typeof Payload.Type

/** Encodes the suite's payloads. */
export const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A raw message `{ n, key }` with a unique id. */
export const makeMessage = (n: number, key: string, extra?: Partial<OutgoingMessage>): OutgoingMessage =>
  outgoing(extra?.payload ?? encoder.encode(JSON.stringify({ n, key })), {
    id: `m-${n}-${Math.random().toString(36).slice(2, 10)}`,
    key,
    contentType: "application/json",
    ...extra
  })

const decodePayload = Schema.decodeUnknownSync(Schema.fromJsonString(Payload))
/** The test payload of a message (a malformed one fails the test with the Schema's message). */
export const payloadOf = (message: Pick<Envelope, "payload">): Payload => decodePayload(decoder.decode(message.payload))

/** Builds the harness of one suite run. */
export const make = (config: Config) => {
  const caps: Capabilities = config.capabilities
  const scale = config.timeScale ?? 1
  const count = config.messageCount ?? 300
  const idle = Duration.millis(1500 * scale)
  const tolerateDuplicates = !caps.exactlyOnce

  const fresh = Effect.fn("Conformance.fresh")(function*(label: string) {
    const name = uniqueName(`conf.${label}`)
    if (config.provision !== undefined) {
      yield* config.provision(name).pipe(Effect.orDie)
      yield* config.provision(`${name}.dlq`).pipe(Effect.orDie)
    }
    return name
  })

  const publish = (destination: string, messages: ReadonlyArray<OutgoingMessage>) =>
    Broker.use((broker) => broker.publish(destination, messages))

  const open = (destination: string, group: string, prefetch = 64) =>
    Broker.use((broker) => broker.subscribe(destination, { group, prefetch, startFrom: "earliest" }))

  /**
   * Reads and acks until `expected` distinct ids arrived, or nothing arrived for `idleFor`.
   */
  const readUntil = Effect.fn("Conformance.readUntil")(function*(
    deliveries: Stream.Stream<RawDelivery, unknown>,
    expected: number,
    options?: {
      readonly idleFor?: Duration.Input
      readonly settle?: (d: RawDelivery) => Effect.Effect<void, unknown>
      readonly done?: () => boolean
    }
  ) {
    const received: Array<Envelope> = []
    const ids = new Set<string>()
    const settle = options?.settle ?? ((d: RawDelivery) => d.ack)
    yield* deliveries.pipe(
      Stream.timeout(options?.idleFor ?? idle),
      Stream.mapEffect((delivery) =>
        Effect.map(settle(delivery), () => {
          received.push(delivery.envelope)
          ids.add(delivery.envelope.id)
          return options?.done?.() ?? ids.size >= expected
        })
      ),
      Stream.takeUntil((done) => done),
      Stream.runDrain
    )
    return { received, ids }
  })

  const assertAllReceived = (sent: ReadonlyArray<OutgoingMessage>, ids: ReadonlySet<string>, received: number) => {
    const missing = sent.filter((m) => !ids.has(m.id))
    assert.strictEqual(missing.length, 0, `missing ${missing.length} of ${sent.length} messages`)
    if (!tolerateDuplicates) assert.strictEqual(received, sent.length, "duplicates on an exactly-once broker")
  }

  const readDeadLetters = (destination: string, expected: number) =>
    Effect.scoped(Effect.flatMap(open(`${destination}.dlq`, "dlq-reader"), (sub) => readUntil(sub.deliveries, expected)))

  return { config, capabilities: caps, scale, count, idle, fresh, publish, open, readUntil, readDeadLetters, assertAllReceived }
}

/** The harness of one suite run. */
export type Harness = ReturnType<typeof make>
