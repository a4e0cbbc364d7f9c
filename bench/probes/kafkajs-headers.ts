/**
 * What record headers cost inside kafkajs's producer: its own record-batch encoder (the code `send` runs per
 * partition) over 1,000 records of the bench's 256-byte order, with Switchyard's two headers (the id and the
 * content type) and with none. kafkajs builds a 512-byte zero-filled `Encoder` per record and one per header.
 *
 *   ./switchyard pnpm exec tsx bench/probes/kafkajs-headers.ts
 */
import { createRequire } from "node:module"
import * as path from "node:path"

interface EncodedBatch {
  readonly buffer: Buffer
}
interface RecordFields {
  readonly offsetDelta: number
  readonly timestampDelta: number
  readonly key: string
  readonly value: Buffer
  readonly headers: Record<string, string>
}
type EncodeRecord = (fields: RecordFields) => unknown
type EncodeBatch = (options: { readonly records: ReadonlyArray<unknown>; readonly firstTimestamp: number; readonly maxTimestamp: number }) => Promise<EncodedBatch>

const require = createRequire(path.join(import.meta.dirname, "../../packages/kafka/package.json"))
const root = path.dirname(require.resolve("kafkajs/package.json"))
const encodeRecord = require(`${root}/src/protocol/recordBatch/record/v0`) as EncodeRecord
const { RecordBatch: encodeBatch } = require(`${root}/src/protocol/recordBatch/v0`) as { readonly RecordBatch: EncodeBatch }

const payload = Buffer.from(JSON.stringify({ pad: "x".repeat(244) }))
const switchyardHeaders = { "x-switchyard-id": "5b4f0d1e-8a9b-4c2d-9e3f-0123456789ab", "content-type": "application/json" }

const measure = async (headers: Record<string, string>, batches: number) => {
  const started = process.hrtime.bigint()
  let bytes = 0
  for (let b = 0; b < batches; b++) {
    const records = Array.from({ length: 1000 }, (_, i) =>
      encodeRecord({ offsetDelta: i, timestampDelta: 0, key: `c-${i % 1000}`, value: payload, headers }))
    const batch = await encodeBatch({ records, firstTimestamp: 0, maxTimestamp: 0 })
    bytes += batch.buffer.length
  }
  const records = batches * 1000
  return { microsPerRecord: Number(process.hrtime.bigint() - started) / 1000 / records, bytesPerRecord: bytes / records }
}

for (let round = 1; round <= 3; round++) {
  const withHeaders = await measure(switchyardHeaders, 50)
  const without = await measure({}, 50)
  console.log(
    `round ${round}: two headers ${withHeaders.microsPerRecord.toFixed(2)} µs/record (${withHeaders.bytesPerRecord.toFixed(0)} B), ` +
      `none ${without.microsPerRecord.toFixed(2)} µs/record (${without.bytesPerRecord.toFixed(0)} B)`
  )
}
