/**
 * A same-process comparison of the two backends' publish path: 64 fibers × 100 single-message publishes
 * (256 B, 16 keys) on a fresh topic, the backends alternating, 3 rounds, on one embedded Kafka. Prints msg/s and
 * the process's CPU per message. Run: `./switchyard pnpm exec tsx packages/kafka/test/probes/publish64.ts`.
 */
import { Effect, Layer, Context } from "effect"
import { Broker } from "@switchyard/core"
import { KafkaBroker, KafkaPlatformatic } from "../../src/index.ts"
import { EmbeddedKafka } from "../../src/testing/index.ts"

const main = Effect.gen(function*() {
  const k = yield* EmbeddedKafka.start()
  const brokers: Record<string, Broker.Broker["Service"]> = {}
  for (const [label, mk] of [["kafkajs", KafkaBroker.layer], ["platformatic", KafkaPlatformatic.layer]] as const) {
    const ctx = yield* Layer.build(mk({ brokers: [k.bootstrap], clientId: "probe" }) as Layer.Layer<Broker.Broker, unknown>)
    brokers[label] = Context.get(ctx, Broker.Broker)
  }
  for (let round = 0; round < 3; round++) {
    for (const label of ["kafkajs", "platformatic"]) {
      const broker = brokers[label]!
      const topic = `p2-${label}-${round}-${Math.random().toString(36).slice(2)}`
      yield* broker.publish(topic, [{ id: "w", key: "w", headers: {}, timestamp: 0, contentType: "text/plain", payload: new Uint8Array(256), correlationId: undefined, causationId: undefined }])
      const t = performance.now()
      const c0 = process.cpuUsage()
      yield* Effect.forEach(Array.from({ length: 64 }, (_, f) => f), (f) => Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) =>
        broker.publish(topic, [{ id: `m${f}-${i}`, key: `k${i % 16}`, headers: {}, timestamp: 0, contentType: "text/plain", payload: new Uint8Array(256), correlationId: undefined, causationId: undefined }]), { discard: true }), { concurrency: "unbounded", discard: true })
      const dt = performance.now() - t
      const cpu = process.cpuUsage(c0)
      console.log(round, label, Math.round(6400 / (dt / 1000)), "msg/s", ((cpu.user + cpu.system) / 6400).toFixed(1), "µs CPU/msg")
    }
  }
})
Effect.runPromise(Effect.scoped(main)).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
