/**
 * Redis Streams. Switchyard: `RedisBroker.layer({ url })`. Raw: node-redis 6 doing what the adapter does:
 * `XADD` with the payload and the id / content type in fields, batches sent in one synchronous loop (node-redis
 * pipelines them), single publishes resolved on their own reply; consumption with `XREADGROUP … COUNT <room>
 * BLOCK` on a dedicated connection (at most `prefetch` unacked), `XACK` per message after the handler on the
 * shared connection (pipelined by node-redis).
 * Both sides use the same topology, created before the worker starts: the stream and the group at `0`.
 */
import { RedisBroker } from "@switchyard/redis"
import { createClient, RESP_TYPES } from "redis"
import { rawEncode } from "../common.ts"
import { type Driver, expectEqual } from "../driver.ts"
import { runRaw } from "../raw.ts"
import type { Order, WorkerInput } from "../spec.ts"
import { runTyped } from "../typed.ts"

const URL_ = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

const fields = (order: Order) => ["payload", rawEncode(order), "x-switchyard-id", order.orderId, "content-type", "application/json"]

const bufferReplies = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.MAP]: Array } as const

/** The entries of one stream in an XREADGROUP reply: `[[id, [field, value, …]], …]`. */
const entriesOf = (reply: unknown): ReadonlyArray<readonly [string, Buffer]> => {
  if (!Array.isArray(reply) || reply.length < 2 || !Array.isArray(reply[1])) return []
  const out: Array<readonly [string, Buffer]> = []
  for (const entry of reply[1]) {
    if (!Array.isArray(entry) || !Array.isArray(entry[1])) continue
    const kv: Array<unknown> = entry[1]
    const at = kv.findIndex((f, i) => i % 2 === 0 && Buffer.isBuffer(f) && f.toString() === "payload")
    const payload = kv[at + 1]
    if (at >= 0 && Buffer.isBuffer(payload)) out.push([String(entry[0]), payload])
  }
  return out
}

const raw = async (input: WorkerInput) => {
  const client = createClient({ url: URL_ })
  await client.connect()
  const reader = client.duplicate()
  await reader.connect()
  const key = input.destination
  const group = input.group
  const state = { running: "yes", outstanding: 0, wake: (): void => undefined }
  let loop: Promise<void> = Promise.resolve()
  return runRaw(input, {
    publish: async (order) => {
      await client.sendCommand(["XADD", key, "*", ...fields(order)])
    },
    publishBatch: async (batch) => {
      await Promise.all(batch.map((order) => client.sendCommand(["XADD", key, "*", ...fields(order)])))
    },
    subscribe: async (prefetch, onMessage) => {
      const settle = (id: string) => () => {
        void client.sendCommand(["XACK", key, group, id])
        state.outstanding--
        state.wake()
      }
      const read = async (): Promise<void> => {
        for (;;) {
          if (state.running !== "yes") return
          const room = prefetch - state.outstanding
          if (room <= 0) {
            await new Promise<void>((resolve) => (state.wake = resolve))
            continue
          }
          const reply = await reader.sendCommand(
            ["XREADGROUP", "GROUP", group, "raw", "COUNT", String(room), "BLOCK", "100", "STREAMS", key, ">"],
            { typeMapping: bufferReplies }
          )
          for (const [id, payload] of entriesOf(reply)) {
            state.outstanding++
            onMessage(payload, settle(id))
          }
        }
      }
      loop = read()
    },
    unsubscribe: async () => {
      state.running = "no"
      state.wake()
      await loop
    },
    close: async () => {
      await reader.close()
      await client.close()
    }
  })
}

const connectAdmin = async () => {
  const client = createClient({ url: URL_ })
  await client.connect()
  return client
}

let admin: Awaited<ReturnType<typeof connectAdmin>> | undefined

export const driver: Driver = {
  name: "redis",
  title: "Redis Streams (node-redis)",
  defaultN: 10_000,
  rawLabel: "node-redis (pipelined XADD, XREADGROUP COUNT/BLOCK, XACK)",
  setup: async () => {
    const client = await connectAdmin()
    admin = client
    return { env: {}, close: () => client.close() }
  },
  prepare: async (input) => {
    const client = admin!
    await client.sendCommand(["XGROUP", "CREATE", input.destination, input.group, "0", "MKSTREAM"])
    const expected = input.warmup + input.n
    return async (result) => {
      try {
        expectEqual("messages confirmed by the worker", result.published, expected)
        const length = Number(await client.sendCommand(["XLEN", input.destination]))
        expectEqual(`entries in ${input.destination}`, length, expected)
        if (input.case.kind !== "pipeline") return `${length} entries in the stream`
        expectEqual("distinct orders handled", result.consumed, expected)
        const pending = await client.sendCommand(["XPENDING", input.destination, input.group])
        const unacked = Array.isArray(pending) ? Number(pending[0]) : -1
        expectEqual(`entries pending (unacked) in group ${input.group}`, unacked, 0)
        return `${result.consumed} handled, nothing pending`
      } finally {
        await client.sendCommand(["DEL", input.destination])
      }
    }
  },
  typed: (input) => runTyped(input, RedisBroker.layer({ url: URL_, clientName: "bench-typed" })),
  raw
}
