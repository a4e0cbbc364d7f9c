/**
 * Raw nats.js probes for tests of messages Switchyard did not write: a raw connection, core and JetStream
 * publishers as a foreign producer sends, and the count of what a stream stores of a subject.
 *
 * @since 0.3.0
 */
import { jetstream, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { connect, headers as makeHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"
import { Effect, type Scope } from "effect"

/**
 * A raw nats.js connection for the scope, drained at its end.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NatsProbes } from "@switchyard/nats/testing"
 * const rtt = Effect.scoped(Effect.flatMap(NatsProbes.rawConnection("nats://127.0.0.1:4222"), (nc) => Effect.promise(() => nc.rtt())))
 * ```
 * @since 0.3.0
 */
export const rawConnection = (servers: string): Effect.Effect<NatsConnection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => connect({ servers, name: "switchyard-nats-raw-probe" })),
    (nc) => Effect.promise(() => nc.drain().catch(() => undefined))
  )

/**
 * A raw message as a foreign producer sends it.
 *
 * @example
 * ```ts
 * import type { NatsProbes } from "@switchyard/nats/testing"
 * const m: NatsProbes.RawMessage = { payload: new TextEncoder().encode("{}"), headers: { "Content-Type": "application/json" } }
 * ```
 * @since 0.3.0
 */
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

const batches = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

/**
 * Publishes with core NATS, in batches each flushed (so nothing waits unbounded in the client).
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@nats-io/transport-node"
 * import { NatsProbes } from "@switchyard/nats/testing"
 * declare const nc: NatsConnection
 * const sent = NatsProbes.publishCore(nc, "orders", [{ payload: new Uint8Array([1]) }])
 * ```
 * @since 0.3.0
 */
export const publishCore = (
  nc: NatsConnection,
  subject: string,
  messages: ReadonlyArray<RawMessage>,
  batch = 500
): Effect.Effect<void> =>
  Effect.forEach(batches(messages, batch), (chunk) =>
    Effect.promise(() => {
      for (const m of chunk) {
        const h = toHeaders(m.msgId === undefined ? m.headers : { ...m.headers, "Nats-Msg-Id": m.msgId })
        nc.publish(subject, m.payload, h === undefined ? undefined : { headers: h })
      }
      return nc.flush()
    }), { discard: true })

/**
 * Publishes with the JetStream client (a PubAck each), up to `batch` in flight.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@nats-io/transport-node"
 * import { NatsProbes } from "@switchyard/nats/testing"
 * declare const nc: NatsConnection
 * const stored = NatsProbes.publishJetStream(nc, "orders", [{ payload: new Uint8Array([1]), msgId: "m-1" }])
 * ```
 * @since 0.3.0
 */
export const publishJetStream = (
  nc: NatsConnection,
  subject: string,
  messages: ReadonlyArray<RawMessage>,
  batch = 500
): Effect.Effect<void> => {
  const js = jetstream(nc)
  return Effect.forEach(batches(messages, batch), (chunk) =>
    Effect.promise(() =>
      Promise.all(chunk.map((m) => {
        const h = toHeaders(m.headers)
        return js.publish(subject, m.payload, {
          ...(h === undefined ? {} : { headers: h }),
          ...(m.msgId === undefined ? {} : { msgID: m.msgId })
        })
      }))
    ), { discard: true })
}

/**
 * The JetStream manager of a raw connection.
 *
 * @example
 * ```ts
 * import type { NatsConnection } from "@nats-io/transport-node"
 * import { NatsProbes } from "@switchyard/nats/testing"
 * declare const nc: NatsConnection
 * const jsm = NatsProbes.manager(nc)
 * ```
 * @since 0.3.0
 */
export const manager = (nc: NatsConnection): Effect.Effect<JetStreamManager> => Effect.promise(() => jetstreamManager(nc))

/**
 * Messages stored in the stream that holds a subject (0 when there is no such stream yet).
 *
 * @example
 * ```ts
 * import type { JetStreamManager } from "@nats-io/jetstream"
 * import { NatsProbes } from "@switchyard/nats/testing"
 * declare const jsm: JetStreamManager
 * const count = NatsProbes.storedCount(jsm, "orders.dlq")
 * ```
 * @since 0.3.0
 */
export const storedCount = (jsm: JetStreamManager, subject: string): Effect.Effect<number> =>
  Effect.promise(async () => {
    const name = await jsm.streams.find(subject).catch(() => undefined)
    if (name === undefined) return 0
    const info = await jsm.streams.info(name, { subjects_filter: subject })
    return info.state.subjects?.[subject] ?? 0
  })
