/**
 * Reading node-redis replies of the stream commands, sent with `Buffer` bulk strings and maps as flat arrays
 * (see {@link bufferReplies}): plain type guards over `unknown`, no casts. A reply of an unexpected shape
 * reads as nothing rather than throwing.
 */
import { RESP_TYPES } from "redis"
import type { RawEntry } from "./envelope.ts"

/** The type mapping of binary-safe stream reads: bulk strings as `Buffer`, maps as flat arrays. */
export const bufferReplies = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.MAP]: Array } as const

const text = (value: unknown): string | undefined =>
  Buffer.isBuffer(value) ? value.toString("utf8") : typeof value === "string" ? value : undefined

const isBufferArray = (value: unknown): value is ReadonlyArray<Buffer> =>
  Array.isArray(value) && value.every((v) => Buffer.isBuffer(v))

/** One `[id, [field, value, …]]` pair (the fields are nil for an entry deleted from the stream). */
const entryOf = (value: unknown): RawEntry | undefined => {
  if (!Array.isArray(value) || value.length < 2) return undefined
  const id = text(value[0])
  if (id === undefined) return undefined
  const fields = value[1]
  return { id, fields: isBufferArray(fields) ? fields : undefined }
}

/** A list of entries. */
export const entries = (value: unknown): ReadonlyArray<RawEntry> => {
  if (!Array.isArray(value)) return []
  const out: Array<RawEntry> = []
  for (const v of value) {
    const entry = entryOf(v)
    if (entry !== undefined) out.push(entry)
  }
  return out
}

/** The entries of one stream in an `XREADGROUP` reply (`[stream, entries]`, or `[[stream, entries]]`), none for nil. */
export const readGroup = (value: unknown): ReadonlyArray<RawEntry> => {
  if (!Array.isArray(value) || value.length === 0) return []
  if (value.length >= 2 && !Array.isArray(value[0])) return entries(value[1])
  const first = value[0]
  return Array.isArray(first) && first.length >= 2 ? entries(first[1]) : []
}

/** An `XAUTOCLAIM` reply: the next cursor, the claimed entries, and the ids it found deleted (and removed from the PEL). */
export interface AutoClaim {
  readonly cursor: string
  readonly claimed: ReadonlyArray<RawEntry>
  readonly deleted: ReadonlyArray<string>
}

export const autoClaim = (value: unknown): AutoClaim => {
  if (!Array.isArray(value)) return { cursor: "0-0", claimed: [], deleted: [] }
  const deleted = Array.isArray(value[2]) ? value[2].map(text).filter((id) => id !== undefined) : []
  return { cursor: text(value[0]) ?? "0-0", claimed: entries(value[1]), deleted }
}

/** The delivery count of the first row of an extended `XPENDING` reply (`[[id, consumer, idle, count]]`). */
export const deliveryCount = (value: unknown): number | undefined => {
  if (!Array.isArray(value) || !Array.isArray(value[0])) return undefined
  const count = Number(value[0][3])
  return Number.isInteger(count) && count > 0 ? count : undefined
}

/** An integer reply (XACK, XLEN, XDEL…). */
export const integer = (value: unknown): number => {
  const n = Number(value)
  return Number.isFinite(n) ? n : 0
}

/** A text reply (an XADD id). */
export const string = (value: unknown): string | undefined => text(value)

/** One row of `XINFO CONSUMERS` (maps as flat arrays). */
export interface ConsumerInfo {
  readonly name: string
  readonly pending: number
  readonly idle: number
}

const fieldsOf = (value: unknown): ReadonlyMap<string, unknown> => {
  const out = new Map<string, unknown>()
  if (!Array.isArray(value)) return out
  for (let i = 0; i + 1 < value.length; i += 2) {
    const name = text(value[i])
    if (name !== undefined) out.set(name, value[i + 1])
  }
  return out
}

export const consumers = (value: unknown): ReadonlyArray<ConsumerInfo> => {
  if (!Array.isArray(value)) return []
  const out: Array<ConsumerInfo> = []
  for (const row of value) {
    const fields = fieldsOf(row)
    const name = text(fields.get("name"))
    if (name !== undefined) out.push({ name, pending: integer(fields.get("pending")), idle: integer(fields.get("idle")) })
  }
  return out
}

/** The rows of `XINFO GROUPS` as field maps. */
export const rows = (value: unknown): ReadonlyArray<ReadonlyMap<string, unknown>> =>
  Array.isArray(value) ? value.map(fieldsOf) : []

/** A text field of a row. */
export const textField = (row: ReadonlyMap<string, unknown>, name: string): string | undefined => text(row.get(name))
