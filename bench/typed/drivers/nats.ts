/**
 * Core NATS (at-most-once). Switchyard: `NatsBroker.layerCore({ connection })`. Raw: nats.js —
 * `nc.publish` then `await nc.flush()` (the adapter's confirmation: the PING/PONG round trip proves the
 * server read everything before it), per message or per batch; a queue-group subscription with a
 * callback (nothing to ack). The typed side first publishes probe orders until its consumer receives one
 * (Consumer.run subscribes asynchronously; core NATS drops what is published before), untimed and not
 * counted as warm-up.
 * Broker-side check: the orchestrator holds a witness subscription on the subject on its own connection
 * and counts what the server delivered: it must equal what the worker published.
 */
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node"
import { NatsBroker } from "@switchyard/nats"
import { rawEncode } from "../common.ts"
import { type Driver, expectEqual } from "../driver.ts"
import { runRaw } from "../raw.ts"
import type { WorkerInput } from "../spec.ts"
import { runTyped } from "../typed.ts"

export const NATS_URL = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222"

const raw = async (input: WorkerInput) => {
  const nc = await connect({ servers: NATS_URL, name: "bench-raw", noAsyncTraces: true })
  const subject = input.destination
  let sub: Subscription | undefined
  return runRaw(input, {
    publish: async (order) => {
      nc.publish(subject, rawEncode(order))
      await nc.flush()
    },
    publishBatch: async (batch) => {
      for (const order of batch) nc.publish(subject, rawEncode(order))
      await nc.flush()
    },
    subscribe: async (_prefetch, onMessage) => {
      sub = nc.subscribe(subject, { queue: input.group, callback: (_err, m) => onMessage(m.data, noop) })
      await nc.flush()
    },
    unsubscribe: async () => sub?.unsubscribe(),
    close: () => nc.drain()
  })
}
const noop = () => {}

let admin: NatsConnection | undefined

const waitFor = async (done: () => boolean, ms: number) => {
  const deadline = Date.now() + ms
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
}

export const driver: Driver = {
  name: "nats",
  title: "core NATS (nats.js)",
  defaultN: 20_000,
  // Consumer.run's default prefetch (16 / 32) drops deliveries on core NATS (at-most-once) as soon as the
  // sink's batches of 500 outrun the handler: the default rows cannot complete (a measured finding, see
  // docs/benchmarks.md). Both sides use nats.js's own default pending limit instead, in every pipeline row.
  prefetch: 65_536,
  rawLabel: "nats.js (publish + flush, queue-group subscription)",
  setup: async () => {
    admin = await connect({ servers: NATS_URL, name: "bench-witness" })
    return { env: {}, close: () => admin!.drain() }
  },
  prepare: async (input) => {
    let seen = 0
    const witness = admin!.subscribe(input.destination, { callback: () => void seen++ })
    await admin!.flush()
    return async (result) => {
      await waitFor(() => seen >= result.published, 5_000)
      witness.unsubscribe()
      const probes = result.published - (input.warmup + input.n)
      if (input.side === "raw" || input.case.kind !== "pipeline") expectEqual("probe messages", probes, 0)
      expectEqual("messages the server delivered to the witness", seen, result.published)
      if (input.case.kind === "pipeline") expectEqual("distinct orders handled", result.consumed, input.warmup + input.n)
      return `server delivered ${seen} to the witness${probes > 0 ? ` (${probes} probes)` : ""}` +
        (input.case.kind === "pipeline" ? `, ${result.consumed} handled` : "")
    }
  },
  typed: (input) =>
    runTyped(input, NatsBroker.layerCore({ connection: { servers: NATS_URL, name: "bench-typed" } }), {
      probe: input.case.kind === "pipeline"
    }),
  raw
}
