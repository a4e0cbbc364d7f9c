/**
 * Kafka-specific proofs against the real broker: receipts and the Java-compatible key partitioner,
 * contiguous-prefix commits under random ack order (and exact resumption after a restart of the consumer),
 * backpressure by pausing partitions, rebalances with joining and leaving members, `startFrom: "latest"`,
 * and configuration from `Config` with a redacted password.
 */
import { execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Redacted, Stream } from "effect"
import { inject } from "vitest"
import { Broker } from "@switchyard/core"
import { KafkaBroker, KafkaConnection, KafkaTopology } from "../src/index.ts"
import { EmbeddedKafka } from "../src/testing/index.ts"
import { brokers, drainFor, message, take, testLayer, testOptions, unique } from "./helpers.ts"

const committedOffsets = (group: string, topic: string) =>
  Effect.gen(function*() {
    const { admin } = yield* KafkaTopology.KafkaTopology
    const result = yield* Effect.promise(() => admin.fetchOffsets({ groupId: group, topics: [topic] }))
    const out = new Map<number, number>()
    for (const p of result[0]?.partitions ?? []) out.set(p.partition, Number(p.offset))
    return out
  })

const shuffle = <A>(xs: ReadonlyArray<A>): Array<A> => {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

/** Partitions computed by the real Java client's `BuiltInPartitioner.partitionForKey` (murmur2). */
const javaPartitions = (keys: ReadonlyArray<string>, partitions: number) =>
  Effect.gen(function*() {
    const dir = yield* EmbeddedKafka.resolveJars()
    const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "switchyard-murmur-"))
    const source = Path.join(work, "Partition.java")
    Fs.writeFileSync(
      source,
      `import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
public class Partition {
  public static void main(String[] args) {
    int n = Integer.parseInt(args[0]);
    StringBuilder out = new StringBuilder();
    for (int i = 1; i < args.length; i++) {
      out.append(BuiltInPartitioner.partitionForKey(args[i].getBytes(java.nio.charset.StandardCharsets.UTF_8), n)).append('\\n');
    }
    System.out.print(out);
  }
}
`
    )
    const output = execFileSync("java", ["-cp", `${Path.join(dir, "libs")}${Path.sep}*`, source, String(partitions), ...keys], {
      encoding: "utf8"
    })
    Fs.rmSync(work, { recursive: true, force: true })
    return output.trim().split("\n").map(Number)
  })

describe("kafka adapter", () => {
  layer(testLayer(), { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("publish: receipts carry partition and contiguous offsets in publish order, keys partition like the Java client", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("receipts")
        yield* admin.createTopics([{ topic, partitions: 6 }])
        const keys = Array.from({ length: 60 }, (_, i) => `customer-${i * 7919}-é`)
        const receipts = yield* broker.publish(topic, keys.map((key, i) => message(i, { key })))
        const expected = yield* javaPartitions(keys, 6)
        assert.deepStrictEqual(receipts.map((r) => r.coordinates.partition), expected)
        // offsets are contiguous from 0 within each partition, in publish order
        const perPartition = new Map<number, Array<number>>()
        for (const r of receipts) {
          const list = perPartition.get(r.coordinates.partition!) ?? []
          list.push(Number(r.coordinates.offset))
          perPartition.set(r.coordinates.partition!, list)
        }
        for (const offsets of perPartition.values()) assert.deepStrictEqual(offsets, offsets.map((_, i) => i))
        assert.deepStrictEqual(receipts.map((r) => r.id), keys.map((_, i) => `m-${i}`))
        // and the broker really stored them there
        const sub = yield* broker.subscribe(topic, { group: unique("g"), prefetch: 100, startFrom: "earliest" })
        const got = yield* take(sub, 60)
        for (const d of got) {
          const r = receipts.find((x) => x.id === d.envelope.id)!
          assert.strictEqual(d.envelope.coordinates.partition, r.coordinates.partition)
          assert.strictEqual(d.envelope.coordinates.offset, r.coordinates.offset)
          assert.strictEqual(d.envelope.coordinates.lane, String(r.coordinates.partition))
        }
      }))

    it.effect("a fresh destination is created on first use with the default partitions, idempotently", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("fresh")
        yield* Effect.forEach([1, 2, 3], (i) => broker.publish(topic, [message(i)]), { concurrency: "unbounded" })
        const described = yield* admin.describe(topic)
        assert.strictEqual(described.partitions.length, 4)
      }))

    it.effect("ensureTopic: interrupting one caller does not interrupt the others waiting on the same topic", () =>
      Effect.gen(function*() {
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("shared")
        const first = yield* admin.ensureTopic(topic).pipe(Effect.forkChild)
        yield* Effect.sleep("10 millis")
        const second = yield* admin.ensureTopic(topic).pipe(Effect.forkChild)
        yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(first)
        // the first caller really was interrupted while the topic was being created
        const exit = yield* Fiber.await(first)
        assert.isTrue(Exit.hasInterrupts(exit), "the first caller was interrupted")
        const partitions = yield* Fiber.join(second)
        assert.strictEqual(partitions.length, 4)
        // and the topic is known from now on
        assert.strictEqual((yield* admin.ensureTopic(topic)).length, 4)
      }))

    it.effect("commits are the contiguous prefix of acks under random order; a restarted member resumes exactly there", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("commit")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 3 }])
        const total = 600
        yield* broker.publish(topic, Array.from({ length: total }, (_, i) => message(i, { key: `k${i}` })))
        const perPartitionCount = new Map<number, number>()
        const holes = new Map<number, number>()
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* broker.subscribe(topic, { group, prefetch: 1000, startFrom: "earliest" })
          const all = yield* take(sub, total, "30 seconds", () => Effect.void)
          for (const d of all) {
            const p = d.envelope.coordinates.partition!
            perPartitionCount.set(p, (perPartitionCount.get(p) ?? 0) + 1)
          }
          // one random unacked offset per partition; everything else acked in random order, concurrently
          // (partition 0's hole is its first record: nothing may be committed past it)
          for (const [p, count] of perPartitionCount) holes.set(p, p === 0 ? 0 : Math.floor(Math.random() * count))
          const toAck = shuffle(all.filter((d) => holes.get(d.envelope.coordinates.partition!) !== Number(d.envelope.coordinates.offset)))
          yield* Effect.forEach(toAck, (d) => d.ack, { concurrency: 16, discard: true })
          yield* Effect.sleep("500 millis")
          const committed = yield* committedOffsets(group, topic)
          // the commit point is the hole itself (for partition 0 the first offset: the same place as none);
          // what was acked above it travels in the commit's metadata
          for (const [p, hole] of holes) assert.strictEqual(committed.get(p), hole, `partition ${p}`)
        }))
        // after the member left (final commit), a new member resumes exactly at each partition's hole, and
        // gets only the holes: everything acked above them is skipped (it was handled)
        const committed = yield* committedOffsets(group, topic)
        for (const [p, hole] of holes) assert.strictEqual(committed.get(p), hole, `partition ${p} after close`)
        const expected = [...holes].filter(([p, hole]) => hole < perPartitionCount.get(p)!).length
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* broker.subscribe(topic, { group, prefetch: 1000, startFrom: "earliest" })
          const again = yield* take(sub, expected)
          const got = new Map(again.map((d) => [d.envelope.coordinates.partition!, Number(d.envelope.coordinates.offset)] as const))
          assert.strictEqual(got.size, expected)
          for (const [p, hole] of holes) {
            if (hole < perPartitionCount.get(p)!) assert.strictEqual(got.get(p), hole, `partition ${p} resumes at its hole`)
          }
          const extra = yield* drainFor(sub, "700 millis")
          assert.strictEqual(extra.length, 0, "nothing acked was redelivered")
        }))
      }))

    it.effect("SIGKILL: a member killed after acking in random order left exactly the contiguous prefix committed", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("sigkill")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 3 }])
        const total = 300
        yield* broker.publish(topic, Array.from({ length: total }, (_, i) => message(i, { key: `k${i}` })))
        const child = spawn(process.execPath, ["--import", "tsx", Path.join(import.meta.dirname, "fixtures", "ack-then-die.ts")], {
          env: { ...process.env, BROKERS: brokers(), TOPIC: topic, GROUP: group, TOTAL: String(total) },
          stdio: ["ignore", "pipe", "inherit"]
        })
        const holes = yield* Effect.callback<Map<number, number>, Error>((resume) => {
          let out = ""
          child.stdout.on("data", (d: Buffer) => {
            out += d.toString()
            const line = out.split("\n").find((l) => l.startsWith("HOLES "))
            if (line !== undefined) resume(Effect.succeed(new Map(JSON.parse(line.slice(6)) as Array<[number, number]>)))
          })
          child.on("exit", (code) => resume(Effect.fail(new Error(`child exited early with ${code}: ${out}`))))
        }).pipe(Effect.timeoutOrElse({ duration: "40 seconds", orElse: () => Effect.fail(new Error("child never reported")) }))
        child.kill("SIGKILL")
        const committed = yield* committedOffsets(group, topic)
        for (const [p, hole] of holes) assert.strictEqual(committed.get(p), hole, `partition ${p}`)
        // the next member of the group (after the dead one's session expires) resumes exactly at the holes
        // and gets only them: the periodic commit's metadata said what was acked above them
        const sub = yield* broker.subscribe(topic, { group, prefetch: 1000, startFrom: "earliest" })
        const again = yield* take(sub, holes.size, "40 seconds")
        const got = new Map(again.map((d) => [d.envelope.coordinates.partition!, Number(d.envelope.coordinates.offset)] as const))
        for (const [p, hole] of holes) assert.strictEqual(got.get(p), hole, `partition ${p} resumes at its hole`)
        const extra = yield* drainFor(sub, "700 millis")
        assert.strictEqual(extra.length, 0, "nothing acked before the SIGKILL was redelivered")
      }), { timeout: 90_000 })

    it.effect("backpressure: a partition holds at most `prefetch` unacked deliveries, acks resume it", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("bp")
        yield* admin.createTopics([{ topic, partitions: 2 }])
        const total = 600
        yield* broker.publish(topic, Array.from({ length: total }, (_, i) => message(i, { key: `k${i}` })))
        const sub = yield* broker.subscribe(topic, { group: unique("g"), prefetch: 10, startFrom: "earliest" })
        const held = yield* drainFor(sub, "1500 millis", false)
        assert.isAtMost(held.length, 20, "at most prefetch per partition while nothing is acked")
        assert.isAtLeast(held.length, 10)
        yield* Effect.forEach(held, (d) => d.ack, { discard: true })
        const rest = yield* take(sub, total - held.length)
        const ids = new Set([...held, ...rest].map((d) => d.envelope.id))
        assert.strictEqual(ids.size, total)
      }))

    it.effect("rebalance: a member joins mid-stream and another leaves; nothing is lost, and acknowledged work on a partition never overlaps across members", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("rebalance")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 4 }])
        const total = 3000
        const received = new Set<string>()
        // per partition: [member, start, end] of each handled delivery
        const spans = new Map<number, Array<[string, number, number]>>()
        const member = (name: string) =>
          Effect.scoped(Effect.gen(function*() {
            const sub = yield* broker.subscribe(topic, { group, prefetch: 50, startFrom: "earliest" })
            yield* sub.deliveries.pipe(
              Stream.mapEffect((d) =>
                Effect.gen(function*() {
                  const start = performance.now()
                  yield* Effect.sleep("1 millis")
                  const end = performance.now()
                  const acked = yield* Effect.result(d.ack)
                  if (acked._tag === "Success") {
                    // only work whose ack counted: a handler still running on a partition revoked under it
                    // gets an AckError and its record goes to the new owner (kafkajs has no revoke hook)
                    received.add(d.envelope.id)
                    const p = d.envelope.coordinates.partition!
                    const list = spans.get(p) ?? []
                    list.push([name, start, end])
                    spans.set(p, list)
                  }
                })
              ),
              Stream.runDrain
            )
          }))
        const publisher = yield* Effect.forEach(Array.from({ length: 30 }, (_, b) => b), (b) =>
          broker.publish(topic, Array.from({ length: 100 }, (_, i) => message(b * 100 + i, { id: `r-${b * 100 + i}`, key: `k${i}` }))).pipe(
            Effect.andThen(Effect.sleep("50 millis"))
          ), { discard: true }).pipe(Effect.forkChild)
        const a = yield* member("a").pipe(Effect.forkChild)
        yield* Effect.sleep("700 millis")
        const b = yield* member("b").pipe(Effect.forkChild)
        yield* Effect.sleep("1500 millis")
        yield* Fiber.interrupt(a)
        const c = yield* member("c").pipe(Effect.forkChild)
        yield* Fiber.join(publisher)
        yield* Effect.gen(function*() {
          while (received.size < total) yield* Effect.sleep("100 millis")
        }).pipe(Effect.timeoutOrElse({ duration: "40 seconds", orElse: () => Effect.void }))
        yield* Fiber.interrupt(b)
        yield* Fiber.interrupt(c)
        assert.strictEqual(received.size, total, `lost ${total - received.size} messages`)
        for (const [p, list] of spans) {
          const sorted = [...list].sort((x, y) => x[1] - y[1])
          for (let i = 1; i < sorted.length; i++) {
            const prev = sorted[i - 1]!
            const cur = sorted[i]!
            if (prev[0] !== cur[0]) assert.isAtMost(prev[2], cur[1] + 0.001, `partition ${p} worked by ${prev[0]} and ${cur[0]} at once`)
          }
        }
      }), { timeout: 90_000 })

    it.effect("native: partitionedStream yields one ordered sub-stream per partition, ending on revoke; rebalance events; lag", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("partitioned")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 4 }])
        const total = 400
        yield* broker.publish(topic, Array.from({ length: total }, (_, i) => message(i, { key: `k${i}` })))
        const offsets = new Map<number, Array<number>>()
        const ended = new Set<number>()
        let received = 0
        const partitions = yield* KafkaBroker.partitionedStream(topic, { group, prefetch: 50, startFrom: "earliest" })
        yield* partitions.pipe(
          Stream.flatMap((p) =>
            p.deliveries.pipe(
              Stream.mapEffect((d) =>
                Effect.sync(() => {
                  const list = offsets.get(p.partition) ?? []
                  list.push(Number(d.envelope.coordinates.offset))
                  offsets.set(p.partition, list)
                  received++
                }).pipe(Effect.andThen(d.ack))
              ),
              Stream.ensuring(Effect.sync(() => ended.add(p.partition)))
            ), { concurrency: "unbounded" }),
          Stream.runDrain,
          Effect.forkChild
        )
        yield* Effect.gen(function*() {
          while (received < total) yield* Effect.sleep("50 millis")
        }).pipe(Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.void }))
        assert.strictEqual(received, total)
        assert.deepStrictEqual([...offsets.keys()].sort(), [0, 1, 2, 3])
        for (const list of offsets.values()) assert.deepStrictEqual(list, list.map((_, i) => i), "offset order per partition")
        // a second member joins: two partitions move to it, their sub-streams end on the first member
        const second = yield* KafkaBroker.subscribe(topic, { group, prefetch: 50, startFrom: "earliest" })
        const events = yield* second.rebalances.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(events[0]?._tag, "Assigned")
        assert.strictEqual(events[0]?.partitions.length, 2)
        yield* Effect.gen(function*() {
          while (ended.size < 2) yield* Effect.sleep("50 millis")
        }).pipe(Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.void }))
        assert.deepStrictEqual([...ended].sort(), [...events[0]!.partitions].sort())
        // lag: nothing acked on a fresh group = everything; after acking, 0
        const third = yield* KafkaBroker.subscribe(topic, { group: unique("lag"), prefetch: 1000, startFrom: "earliest" })
        const all = yield* take(third, total, "30 seconds", () => Effect.void)
        const before = yield* third.lag
        assert.strictEqual([...before.values()].reduce((a, b) => a + b, 0), total)
        yield* Effect.forEach(all, (d) => d.ack, { discard: true })
        const after = yield* third.lag
        assert.strictEqual([...after.values()].reduce((a, b) => a + b, 0), 0)
      }))

    it.effect("sticky assignment: joining members take only their share, nobody else's partitions move", () =>
      Effect.gen(function*() {
        const admin = yield* KafkaTopology.KafkaTopology
        const topic = unique("sticky")
        const group = unique("g")
        yield* admin.createTopics([{ topic, partitions: 4 }])
        const options = { group, prefetch: 10, startFrom: "earliest" } as const
        const latest = new Map<string, ReadonlyArray<number>>()
        let revoked = 0
        const member = (name: string) =>
          Effect.gen(function*() {
            const sub = yield* KafkaBroker.subscribe(topic, options)
            yield* sub.rebalances.pipe(
              Stream.runForEach((e) =>
                Effect.sync(() => {
                  if (e._tag === "Assigned") latest.set(name, e.partitions)
                  else revoked += e.partitions.length
                })
              ),
              Effect.forkChild
            )
          })
        const settled = (expected: number) =>
          Effect.gen(function*() {
            while (
              latest.size < expected ||
              new Set([...latest.values()].flat()).size !== 4 ||
              [...latest.values()].flat().length !== 4
            ) yield* Effect.sleep("50 millis")
          }).pipe(Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.void }))
        yield* member("a")
        yield* settled(1)
        yield* member("b")
        yield* settled(2)
        assert.strictEqual(revoked, 2, "b takes two of a's four")
        yield* member("c")
        yield* settled(3)
        assert.strictEqual(revoked, 3, "c takes one partition; a and b keep the rest")
        assert.deepStrictEqual([...latest.values()].map((p) => p.length).sort(), [1, 1, 2])
      }))

    it.effect("startFrom latest: a new group only sees messages published after subscribe returned", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const topic = unique("latest")
        yield* broker.publish(topic, Array.from({ length: 20 }, (_, i) => message(i, { id: `old-${i}` })))
        const sub = yield* broker.subscribe(topic, { group: unique("g"), prefetch: 100, startFrom: "latest" })
        yield* broker.publish(topic, Array.from({ length: 20 }, (_, i) => message(i, { id: `new-${i}` })))
        const got = yield* take(sub, 20)
        assert.isTrue(got.every((d) => d.envelope.id.startsWith("new-")))
        const extra = yield* drainFor(sub, "500 millis")
        assert.strictEqual(extra.length, 0)
      }))
  })

  layer(testLayer(), { excludeTestServices: true })((it) => {
    it.effect("invalid settings (an idempotent producer without retries) fail the layer with a ConnectionError, not a defect", () =>
      Effect.gen(function*() {
        const error = yield* Effect.scoped(Layer.build(KafkaBroker.layer({ brokers: [brokers()], retry: { retries: 0 } }))).pipe(Effect.flip)
        assert.strictEqual(error._tag, "ConnectionError")
      }))

    it.effect("configuration from Config: brokers, client id, SASL with a redacted password", () =>
      Effect.gen(function*() {
        const provider = ConfigProvider.fromEnvRecord({
          KAFKA_BROKERS: "127.0.0.1:1, 127.0.0.1:2",
          KAFKA_CLIENT_ID: "svc",
          KAFKA_SASL_MECHANISM: "scram-sha-512",
          KAFKA_SASL_USERNAME: "alice",
          KAFKA_SASL_PASSWORD: "s3cret",
          KAFKA_DEFAULT_PARTITIONS: "8",
          KAFKA_SESSION_TIMEOUT: "12 seconds",
          KAFKA_HEARTBEAT_INTERVAL: "1 second",
          KAFKA_REBALANCE_TIMEOUT: "20 seconds",
          KAFKA_METADATA_MAX_AGE: "1 minute"
        })
        const settings = yield* KafkaConnection.config().parse(provider)
        const resolved = KafkaConnection.resolve(settings)
        assert.deepStrictEqual(
          [resolved.sessionTimeout, resolved.heartbeatInterval, resolved.rebalanceTimeout, resolved.metadataMaxAge],
          [12_000, 1_000, 20_000, 60_000]
        )
        assert.deepStrictEqual(settings.brokers, ["127.0.0.1:1", "127.0.0.1:2"])
        assert.strictEqual(settings.clientId, "svc")
        assert.strictEqual(settings.defaultPartitions, 8)
        assert.strictEqual(settings.saslMechanism, "scram-sha-512")
        assert.strictEqual(settings.username, "alice")
        assert.strictEqual(Redacted.value(settings.password!), "s3cret")
        assert.notInclude(JSON.stringify(settings), "s3cret")
        assert.notInclude(String(settings.password), "s3cret")
      }))

    it.effect("SASL PLAIN and SCRAM-SHA-256 authenticate against the real broker; a wrong password is a ConnectionError of kind AuthenticationFailed with the broker's reason", () =>
      Effect.gen(function*() {
        const provided = inject("kafkaSaslBrokers")
        const sasl = provided !== "" ? provided : (yield* EmbeddedKafka.start({ sasl: true })).saslBootstrap!
        const { username, password } = EmbeddedKafka.saslUser
        for (const mechanism of ["plain", "scram-sha-256"] as const) {
          const topic = unique(`sasl-${mechanism}`)
          const got = yield* Effect.scoped(Effect.gen(function*() {
            const broker = yield* Broker.Broker
            yield* broker.publish(topic, [message(1)])
            const sub = yield* broker.subscribe(topic, { group: unique("g"), prefetch: 10, startFrom: "earliest" })
            return yield* take(sub, 1)
          }).pipe(Effect.provide(KafkaBroker.layer(testOptions({ brokers: [sasl], saslMechanism: mechanism, username, password: Redacted.make(password) })))))
          assert.strictEqual(got[0]?.envelope.id, "m-1")
        }
        const exit = yield* Effect.scoped(Layer.build(KafkaBroker.layer({
          brokers: [sasl],
          retry: { retries: 1, initialRetryTime: "50 millis" },
          saslMechanism: "scram-sha-256",
          username,
          password: Redacted.make("not-the-password")
        }))).pipe(Effect.exit)
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
        assert.strictEqual(error?._tag === "Some" ? error.value._tag : "none", "ConnectionError")
        assert.notInclude(String(error?._tag === "Some" ? error.value.message : ""), "not-the-password")
        const connection = error?._tag === "Some" && error.value._tag === "ConnectionError" ? error.value : undefined
        assert.strictEqual(connection?.kind, "AuthenticationFailed")
        assert.isFalse(connection?.isRetryable)
        // the broker's own words, not just "producer connect failed"
        assert.match(connection?.reason.message ?? "", /SASL SCRAM SHA256 authentication failed/i)
      }))

    it.effect("an unreachable cluster fails the layer with a ConnectionError of kind Unreachable, with the socket's reason", () =>
      Effect.gen(function*() {
        const port = yield* EmbeddedKafka.freePort
        const error = yield* Effect.scoped(Layer.build(
          KafkaBroker.layer({ brokers: [`127.0.0.1:${port}`], connectTimeout: "200 millis", retry: { retries: 1, initialRetryTime: "50 millis" } })
        )).pipe(Effect.flip)
        assert.strictEqual(error._tag, "ConnectionError")
        assert.strictEqual(error.kind, "Unreachable")
        assert.include(error.reason.message, "ECONNREFUSED")
      }))
  })
})
