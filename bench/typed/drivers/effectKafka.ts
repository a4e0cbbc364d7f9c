/**
 * Switchyard against effect-kafka (the Effect peer) on Kafka produce: the typed side is the Kafka driver's
 * (`KafkaBroker.layer`, `Publisher.publish` / `publishAll`); the "raw" side is effect-kafka 0.9 over kafkajs
 * (`bench/peers/effect-kafka/producer.ts`), publishing the same orders with the same producer settings.
 * effect-kafka needs Effect 3: it lives in its own install outside the workspace, made on the first run
 * (`npm install` in bench/peers/effect-kafka). Publish cases only (the target is on produce). The
 * broker, topics and broker-side checks are the Kafka driver's.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Driver } from "../driver.ts"
import type { WorkerInput, WorkerResult } from "../spec.ts"
import { driver as kafka } from "./kafka.ts"

const peerDir = fileURLToPath(new URL("../../peers/effect-kafka/", import.meta.url))
const peerModule = new URL("../../peers/effect-kafka/producer.ts", import.meta.url).href

/** Installs the peer's own dependencies once (Effect 3 beside the workspace's Effect 4). */
const ensureInstalled = () => {
  if (existsSync(`${peerDir}node_modules/effect-kafka/package.json`)) return
  console.log(`installing effect-kafka and Effect 3 into ${peerDir} (once)`)
  const result = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--legacy-peer-deps"], { cwd: peerDir, stdio: "inherit" })
  if (result.status !== 0) throw new Error("npm install of the effect-kafka peer failed")
}

export const driver: Driver = {
  ...kafka,
  name: "effect-kafka",
  title: "Kafka, Switchyard against effect-kafka 0.9 (both on kafkajs, 4 partitions)",
  rawLabel: "effect-kafka 0.9 + Effect 3 (Producer.send per call, caller's JSON.stringify)",
  kinds: ["publish", "publishAll"],
  setup: async () => {
    ensureInstalled()
    return kafka.setup()
  },
  raw: async (input) => {
    // A computed specifier: the workspace's type check must not follow it into code that needs Effect 3's
    // types (checked on its own: `npx tsc -p bench/peers/effect-kafka` after the install).
    const peer: { readonly run: (input: WorkerInput) => Promise<WorkerResult> } = await import(peerModule)
    return peer.run(input)
  }
}
