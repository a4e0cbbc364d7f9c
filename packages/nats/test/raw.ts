/**
 * Test helpers for messages Switchyard did not write: a raw nats.js connection and publisher, and bounded
 * waits on counts.
 */
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream"
import { connect, headers as makeHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"
import { Duration, Effect, Schedule } from "effect"
import { servers } from "./helpers.ts"

/** A raw nats.js connection for the scope, drained at its end. */
export const rawConnection = Effect.acquireRelease(
  Effect.promise(() => connect({ servers, name: "switchyard-nats-raw-test" })),
  (nc) => Effect.promise(() => nc.drain().catch(() => undefined))
)

/** A raw message as a foreign producer sends it. */
export interface RawMessage {
  readonly payload: Uint8Array
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** `Nats-Msg-Id` (only when set): JetStream's `msgID`, a plain header on core NATS. */
  readonly msgId?: string | undefined
}

const toHeaders = (headers: Readonly<Record<string, string>> | undefined): MsgHdrs | undefined => {
  if (headers === undefined || Object.keys(headers).length === 0) return undefined
  const h = makeHeaders()
  for (const [name, value] of Object.entries(headers)) h.append(name, value)
  return h
}

/** Publishes with core NATS, in batches each flushed (so nothing waits unbounded in the client). */
export const publishCore = (nc: NatsConnection, subject: string, messages: ReadonlyArray<RawMessage>, batch = 500) =>
  Effect.promise(async () => {
    for (let start = 0; start < messages.length; start += batch) {
      for (const m of messages.slice(start, start + batch)) {
        const h = toHeaders(m.msgId === undefined ? m.headers : { ...m.headers, "Nats-Msg-Id": m.msgId })
        nc.publish(subject, m.payload, h === undefined ? undefined : { headers: h })
      }
      await nc.flush()
    }
  })

/** Publishes with the JetStream client (PubAck each), up to `batch` in flight. */
export const publishJetStream = (
  nc: NatsConnection,
  subject: string,
  messages: ReadonlyArray<RawMessage>,
  batch = 500
) =>
  Effect.promise(async () => {
    const js = jetstream(nc)
    for (let start = 0; start < messages.length; start += batch) {
      await Promise.all(messages.slice(start, start + batch).map((m) => {
        const h = toHeaders(m.headers)
        return js.publish(subject, m.payload, {
          ...(h === undefined ? {} : { headers: h }),
          ...(m.msgId === undefined ? {} : { msgID: m.msgId })
        })
      }))
    }
  })

/** The JetStream manager of a raw connection. */
export const manager = (nc: NatsConnection): Effect.Effect<JetStreamManager> =>
  Effect.promise(() => jetstreamManager(nc))

/** Messages stored in the stream that holds a subject (0 when there is no such stream yet). */
export const storedCount = (jsm: JetStreamManager, subject: string): Effect.Effect<number> =>
  Effect.promise(async () => {
    const name = await jsm.streams.find(subject).catch(() => undefined)
    if (name === undefined) return 0
    const info = await jsm.streams.info(name, { subjects_filter: subject })
    return info.state.subjects?.[subject] ?? 0
  })

/**
 * Waits until `check` holds, polling every 100 ms, for at most `within`; then returns the last observed
 * value either way (the caller asserts on it, so a timeout shows the count that was reached).
 */
export const eventually = <A, E = never, R = never>(
  observe: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  within: Duration.Input = "20 seconds"
) =>
  observe.pipe(
    Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: check }),
    Effect.timeoutOrElse({ duration: Duration.fromInputUnsafe(within), orElse: () => observe })
  )

export const utf8 = new TextEncoder()
