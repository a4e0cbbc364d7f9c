import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Duration, Effect, Stream } from "effect"
import type { Broker, Envelope } from "@switchyard/core"
import { Headers } from "@switchyard/core"
import type { PoisonCorpus } from "@switchyard/core/testing"
import { Kafka, logLevel, type Message, Partitioners, type Producer } from "kafkajs"
import { inject } from "vitest"
import { KafkaTopology, KafkaBroker } from "../src/index.ts"
import { EmbeddedKafka } from "../src/testing/index.ts"

export const brokers = (): string => inject("kafkaBrokers")

/** Fast consumer-group timings for tests (6 s is the default broker floor for the session timeout). */
export const testOptions = (extra: Partial<KafkaBroker.Options> = {}): KafkaBroker.Options => ({
  brokers: [brokers()],
  clientId: "switchyard-test",
  defaultPartitions: 4,
  consumer: {
    sessionTimeout: "6 seconds",
    heartbeatInterval: "500 millis",
    rebalanceTimeout: "6 seconds",
    commitInterval: "50 millis",
    drainTimeout: "3 seconds"
  },
  ...extra
})

export const testLayer = (extra: Partial<KafkaBroker.Options> = {}) => KafkaBroker.layer(testOptions(extra))

export const unique = (name: string): string => `${name}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const message = (i: number, overrides: Partial<Envelope.OutgoingMessage> = {}): Envelope.OutgoingMessage => ({
  id: `m-${i}`,
  key: `k-${i % 16}`,
  headers: {},
  timestamp: 1_700_000_000_000 + i,
  contentType: "text/plain",
  payload: encoder.encode(`payload-${i}`),
  correlationId: undefined,
  causationId: undefined,
  ...overrides
})

export const text = (payload: Uint8Array): string => decoder.decode(payload)

/** Takes `n` deliveries (or fails after `timeout`), applying `onDelivery` to each. */
export const take = (
  subscription: Broker.Subscription,
  n: number,
  timeout: Duration.Input = "30 seconds",
  onDelivery: (d: Broker.RawDelivery) => Effect.Effect<unknown, unknown> = (d) => d.ack
) =>
  subscription.deliveries.pipe(
    Stream.mapEffect((d) => onDelivery(d).pipe(Effect.as(d))),
    Stream.take(n),
    Stream.runCollect,
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.fail(new Error(`did not receive ${n} deliveries within ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
    })
  )

/** Collects whatever arrives within `window` of quiet (idle timeout re-armed on every delivery is not needed for our counts). */
export const drainFor = (subscription: Broker.Subscription, window: Duration.Input, ack = true) =>
  subscription.deliveries.pipe(
    Stream.mapEffect((d) => (ack ? d.ack : Effect.void).pipe(Effect.as(d))),
    Stream.interruptWhen(Effect.sleep(window)),
    Stream.runCollect
  )

/** A raw kafkajs producer (a foreign producer: no Switchyard headers unless given), disconnected with the scope. */
export const rawProducer = (bootstrap: string = brokers()) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      // Idempotent, as a careful foreign producer is: the tests count records exactly, and a plain producer's
      // retry under load stores a batch twice (seen in CI: duplicated dead letters ended a poison-corpus read
      // early). What it writes (bytes, keys, headers, or none) is unchanged.
      const producer = new Kafka({ clientId: "raw-producer", brokers: [bootstrap], logLevel: logLevel.NOTHING }).producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        allowAutoTopicCreation: false,
        idempotent: true,
        maxInFlightRequests: 1
      })
      await producer.connect()
      return producer
    }),
    (producer) => Effect.promise(() => producer.disconnect().catch(() => undefined))
  )

/** Sends raw records in batches (kafkajs's own partitioner: murmur2 of the key bytes, like the Java client). */
export const sendRaw = (producer: Producer, topic: string, messages: ReadonlyArray<Message>, batch = 500) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(messages.length / batch) }, (_, i) => messages.slice(i * batch, (i + 1) * batch)),
    (chunk) => Effect.promise(() => producer.send({ topic, messages: [...chunk], acks: -1 })),
    { discard: true }
  )

/** Partitions computed by the real Java client's `BuiltInPartitioner.partitionForKey` (murmur2) for key bytes. */
export const javaPartitionsOfBytes = (keys: ReadonlyArray<Uint8Array>, partitions: number) =>
  Effect.gen(function*() {
    const dir = yield* EmbeddedKafka.resolveJars()
    const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "switchyard-murmur-"))
    const source = Path.join(work, "PartitionBytes.java")
    Fs.writeFileSync(
      source,
      `import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
public class PartitionBytes {
  public static void main(String[] args) {
    int n = Integer.parseInt(args[0]);
    StringBuilder out = new StringBuilder();
    for (int i = 1; i < args.length; i++) {
      out.append(BuiltInPartitioner.partitionForKey(java.util.HexFormat.of().parseHex(args[i]), n)).append('\\n');
    }
    System.out.print(out);
  }
}
`
    )
    const hex = keys.map((k) => Buffer.from(k).toString("hex"))
    const output = execFileSync("java", ["-cp", `${Path.join(dir, "libs")}${Path.sep}*`, source, String(partitions), ...hex], {
      encoding: "utf8"
    })
    Fs.rmSync(work, { recursive: true, force: true })
    return output.trim().split("\n").map(Number)
  })

/** What Java's `LongSerializer` writes: 8 big-endian bytes. */
export const longKey = (value: bigint): Buffer => {
  const buffer = Buffer.alloc(8)
  buffer.writeBigInt64BE(value)
  return buffer
}

/** The committed offset (and its metadata) of `group` per partition of `topic` (offset -1: none). */
export const committed = (group: string, topic: string) =>
  Effect.gen(function*() {
    const { admin } = yield* KafkaTopology.KafkaTopology
    const result = yield* Effect.promise(() => admin.fetchOffsets({ groupId: group, topics: [topic] }))
    return new Map((result[0]?.partitions ?? []).map((p) => [p.partition, { offset: Number(p.offset), metadata: p.metadata }] as const))
  })

/**
 * Sends records with Apache Kafka's own Java producer (`LongSerializer` keys, `StringSerializer` values, default
 * partitioner) from the embedded broker's jars; returns the partition Java chose for each record.
 */
export const javaProduceLongKeys = (bootstrap: string, topic: string, records: ReadonlyArray<readonly [bigint, string]>) =>
  Effect.gen(function*() {
    const dir = yield* EmbeddedKafka.resolveJars()
    const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "switchyard-javaproducer-"))
    const source = Path.join(work, "LongKeyProducer.java")
    Fs.writeFileSync(
      source,
      `import java.util.Properties;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.*;
public class LongKeyProducer {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    try (KafkaProducer<Long, String> producer = new KafkaProducer<>(props, new LongSerializer(), new StringSerializer())) {
      StringBuilder out = new StringBuilder();
      for (int i = 2; i + 1 < args.length; i += 2) {
        RecordMetadata m = producer.send(new ProducerRecord<>(args[1], Long.parseLong(args[i]), args[i + 1])).get();
        out.append("PARTITION ").append(m.partition()).append('\\n');
      }
      System.out.print(out);
    }
  }
}
`
    )
    const output = execFileSync(
      "java",
      [
        `-Dlog4j2.configurationFile=${Path.join(dir, "log4j2.properties")}`,
        "-Dlog4j2.level=WARN",
        "-cp",
        `${Path.join(dir, "libs")}${Path.sep}*`,
        source,
        bootstrap,
        topic,
        ...records.flatMap(([key, value]) => [String(key), value])
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }
    )
    Fs.rmSync(work, { recursive: true, force: true })
    // (the client's own log lines share stdout)
    return output.split("\n").filter((l) => l.startsWith("PARTITION ")).map((l) => Number(l.slice(10)))
  })

/** The record a foreign producer writes for a poison-corpus entry: its headers as given, id and content type only when set. */
export const corpusRecord = (entry: PoisonCorpus.Entry, partitions: number): Message => ({
  key: `k-${entry.index % 64}`,
  value: Buffer.from(entry.payload),
  partition: entry.index % partitions,
  headers: {
    ...entry.headers,
    ...(entry.messageId !== undefined ? { [Headers.messageId]: entry.messageId } : {}),
    ...(entry.contentType !== undefined ? { [Headers.contentType]: entry.contentType } : {})
  }
})

/**
 * Publishes a poison corpus with a raw kafkajs producer in batches of 500 (oversized entries alone: a batch may
 * not exceed the broker's request limits); returns where each entry landed (`partition/offset`), to find its
 * dead letter by the origin coordinates.
 */
export const publishCorpus = (producer: Producer, topic: string, corpus: ReadonlyArray<PoisonCorpus.Entry>, partitions: number) =>
  Effect.gen(function*() {
    const coordinates = new Map<string, PoisonCorpus.Entry>()
    const batches: Array<Array<PoisonCorpus.Entry>> = [[]]
    for (const entry of corpus) {
      if (entry.kind.startsWith("oversized")) batches.push([entry], [])
      else if (batches[batches.length - 1]!.push(entry) >= 500) batches.push([])
    }
    for (const batch of batches.filter((b) => b.length > 0)) {
      const sent = yield* Effect.promise(() =>
        producer.send({ topic, messages: batch.map((entry) => corpusRecord(entry, partitions)), acks: -1 })
      )
      const next = new Map(sent.map((m) => [m.partition, Number(m.baseOffset)] as const))
      for (const entry of batch) {
        const p = entry.index % partitions
        const offset = next.get(p)!
        next.set(p, offset + 1)
        coordinates.set(`${p}/${offset}`, entry)
      }
    }
    return coordinates
  })
