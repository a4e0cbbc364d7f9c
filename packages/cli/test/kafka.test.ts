/**
 * The CLI on Kafka: one embedded Apache Kafka broker (KRaft, from the jars; see
 * `@switchyard/kafka/testing`) is started for this file and handed to every spawned CLI through
 * `KAFKA_BROKERS`; the test process talks to the same broker (topics created with the Kafka admin,
 * dead letters made by `Consumer.run` in two groups).
 */
import { assert, layer } from "@effect/vitest"
import { Broker, Consumer, DeadLetters, Headers, Publisher, Switchyard, Topic } from "@switchyard/core"
import { KafkaBroker, KafkaTopology } from "@switchyard/kafka"
import { EmbeddedKafka } from "@switchyard/kafka/testing"
import { Context, Data, Duration, Effect, Layer, Ref, References, Schedule, Schema } from "effect"
import { json, run, start, tempFile, unique } from "./helpers.ts"

class CardDeclined extends Data.TaggedError("CardDeclined")<{ readonly n: number }> {
  override get message() {
    return `card declined for order ${this.n}`
  }
}
class ShippingDown extends Data.TaggedError("ShippingDown")<{ readonly n: number }> {
  override get message() {
    return `shipping service down for order ${this.n}`
  }
}

const Order = Schema.Struct({ n: Schema.Number })

/** The embedded broker's bootstrap address. */
class TestKafka extends Context.Service<TestKafka, { readonly bootstrap: string }>()("cli-test/TestKafka") {}

const embedded = Layer.effect(
  TestKafka,
  EmbeddedKafka.start().pipe(Effect.map((kafka) => TestKafka.of({ bootstrap: kafka.bootstrap })), Effect.orDie)
)

// fast consumer-group timings (the broker's floor is 1 s), for this process and the CLI's
const timings = { sessionTimeout: "6 seconds", heartbeatInterval: "500 millis", rebalanceTimeout: "6 seconds" } as const

const kafkaBroker = Layer.unwrap(Effect.gen(function*() {
  const { bootstrap } = yield* TestKafka
  return KafkaBroker.layer({
    brokers: [bootstrap],
    clientId: "switchyard-cli-tests",
    defaultPartitions: 4,
    consumer: { ...timings, commitInterval: "50 millis", drainTimeout: "3 seconds" }
  })
}))

// Each dead letter logs a warning: keep the output quiet.
const quiet = Layer.succeed(References.MinimumLogLevel, "Error")

const live = Switchyard.on(kafkaBroker).pipe(Layer.provideMerge(embedded), Layer.provideMerge(quiet))

/** The environment of a CLI process on the embedded broker. */
const cliEnv = Effect.gen(function*() {
  const { bootstrap } = yield* TestKafka
  return {
    SWITCHYARD_BROKER: "kafka",
    KAFKA_BROKERS: bootstrap,
    KAFKA_CLIENT_ID: "switchyard-cli",
    KAFKA_SESSION_TIMEOUT: timings.sessionTimeout,
    KAFKA_HEARTBEAT_INTERVAL: timings.heartbeatInterval,
    KAFKA_REBALANCE_TIMEOUT: timings.rebalanceTimeout
  }
})

const cli = (args: ReadonlyArray<string>, options: { readonly input?: string; readonly stdinFile?: string } = {}) =>
  Effect.gen(function*() {
    const env = yield* cliEnv
    return yield* Effect.promise(() => run(["--broker", "kafka", ...args], { ...options, env }))
  })

const eventually = <A, E, R>(observe: Effect.Effect<A, E, R>, check: (a: A) => boolean, within: Duration.Input = "60 seconds") =>
  observe.pipe(
    Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: check }),
    Effect.timeoutOrElse({ duration: Duration.fromInputUnsafe(within), orElse: () => observe })
  )

const lagOf = (destination: string, group: string) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    return yield* broker.lag!(destination, group)
  })

const createTopic = (topic: string) =>
  Effect.gen(function*() {
    const admin = yield* KafkaTopology.KafkaTopology
    yield* admin.createTopics([{ topic, partitions: 4 }])
    assert.strictEqual((yield* admin.describe(topic)).partitions.length, 4)
  })

const orders = [
  { orderId: "o-1", total: 42 },
  { orderId: "o-2", total: 7.5, tags: ["a", "b"] },
  { orderId: "o-3", total: 0, note: "ünïcode ✓" }
]
const jsonl = orders.map((o) => JSON.stringify(o)).join("\n") + "\n"

const jsonLines = (stdout: string) => stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))

layer(live, { timeout: "120 seconds", excludeTestServices: true })("the CLI on Kafka", (it) => {
  it.effect("health: connects, prints the cluster's serverInfo, exit 0", () =>
    Effect.gen(function*() {
      const { bootstrap } = yield* TestKafka
      const port = bootstrap.split(":").pop()!
      const info = yield* (yield* Broker.Broker).serverInfo!

      const text = yield* cli(["health"])
      assert.strictEqual(text.code, 0, text.stderr)
      // (kafkajs's documented, harmless TimeoutNegativeWarning may be on stderr: docs/brokers/kafka.md)
      assert.notInclude(text.stderr, "switchyard:")
      assert.include(text.stdout, "ok: connected to kafka")
      assert.match(text.stdout, /^product +Apache Kafka$/m)
      assert.match(text.stdout, /^version +unknown$/m)
      assert.match(text.stdout, new RegExp(`^clusterId +${info.details["clusterId"]!.replace(/[-\\^$.*+?()[\]{}|]/g, "\\$&")}$`, "m"))
      assert.match(text.stdout, new RegExp(`^brokers +1@127\\.0\\.0\\.1:${port}$`, "m"))
      assert.match(text.stdout, /^capabilities .*consumerGroups/m)

      const report = json(yield* cli(["health", "--json"]))
      assert.strictEqual(report.broker, "kafka")
      assert.strictEqual(report.product, "Apache Kafka")
      assert.strictEqual(report.version, "unknown")
      assert.deepStrictEqual(report.details, info.details)
      assert.strictEqual(report.details.brokers, `1@127.0.0.1:${port}`)
      assert.isTrue(report.capabilities.persistent)
      assert.isTrue(report.capabilities.consumerGroups)
    }))

  it.effect("publish < file.jsonl is confirmed; tail --json --from earliest reads them; SIGINT exits 0; lag is published minus consumed", () =>
    Effect.gen(function*() {
      const topic = unique("orders")
      const group = unique("tail")
      yield* createTopic(topic)
      const env = yield* cliEnv

      // published before any group reads: a new group --from earliest gets them
      const file = tempFile("orders.jsonl", jsonl)
      const published = yield* cli(["publish", topic, "--key", "k-1", "--header", "source=cli-test", "--json"], { stdinFile: file })
      assert.strictEqual(published.code, 0, published.stderr)
      assert.deepInclude(json(published), { topic, published: 3 })
      // nobody consumed yet: a group without commits lags by all of them
      assert.deepInclude(json(yield* cli(["lag", topic, "--group", group, "--json"])), { topic, group, broker: "kafka", lag: 3 })

      const tail = start(["--broker", "kafka", "tail", topic, "--group", group, "--from", "earliest", "--json"], { env })
      yield* Effect.promise(() => tail.waitFor((stdout) => jsonLines(stdout).length >= 3))
      tail.child.kill("SIGINT")
      const ended = yield* Effect.promise(() => tail.exited)
      assert.strictEqual(ended.code, 0, ended.stderr)
      assert.isNull(ended.signal)
      assert.include(ended.stderr, `tailing ${topic} on kafka (group ${group}, from earliest)`)
      assert.notMatch(ended.stderr, /error|at .*\.ts/i)
      const lines = jsonLines(ended.stdout)
      assert.deepStrictEqual(lines.map((l) => l.value), orders)
      assert.deepStrictEqual(lines.map((l) => l.key), ["k-1", "k-1", "k-1"])
      for (const line of lines) {
        assert.strictEqual(line.headers.source, "cli-test")
        assert.isNumber(line.coordinates.partition)
        assert.match(line.coordinates.offset, /^\d+$/)
      }
      // (one key, one partition: offsets in publish order)
      assert.deepStrictEqual(lines.map((l) => l.coordinates.partition), Array(3).fill(lines[0].coordinates.partition))
      const offsets = lines.map((l) => Number(l.coordinates.offset))
      assert.deepStrictEqual(offsets, [offsets[0]!, offsets[0]! + 1, offsets[0]! + 2])

      // the tail committed what it read when it stopped: 3 consumed of 3
      assert.strictEqual(json(yield* cli(["lag", topic, "--group", group, "--json"])).lag, 0)
      const more = yield* cli(["publish", topic], { input: '{"orderId":"o-4"}\n{"orderId":"o-5"}\n' })
      assert.strictEqual(more.code, 0, more.stderr)
      assert.match(more.stdout, /^published 2 messages to .* all confirmed/m)
      // 5 published, 3 consumed
      const lag = yield* cli(["lag", topic, "--group", group, "--json"])
      assert.strictEqual(lag.code, 0, lag.stderr)
      assert.deepInclude(json(lag), { topic, group, lag: 2 })
      assert.strictEqual(yield* lagOf(topic, group), 2)
      const text = yield* cli(["lag", topic, "--group", group])
      assert.strictEqual(text.stdout.trim(), `${topic}  group ${group}  lag 2`)
    }))

  it.effect("two groups' dead letters: list shows both groups' reasons; redrive --group a reprocesses only in a; purge --group b empties the rest", () =>
    Effect.gen(function*() {
      const topic = Topic.make(unique("orders"), Order, { key: (o) => String(o.n) })
      const a = unique("billing")
      const b = unique("shipping")
      yield* createTopic(topic.name)
      const aBroken = yield* Ref.make(true)
      const handledA: Array<{ readonly n: number; readonly redriveGroup: string | undefined }> = []
      const handledB: Array<number> = []
      yield* Consumer.run(topic, (order, envelope) =>
        Effect.gen(function*() {
          if (yield* Ref.get(aBroken)) return yield* new CardDeclined({ n: order.n })
          handledA.push({ n: order.n, redriveGroup: envelope.headers[Headers.redriveGroup] })
        }), { group: a, idempotency: true }).pipe(Effect.forkScoped)
      yield* Consumer.run(topic, (order) =>
        order.n % 2 === 0 ? Effect.fail(new ShippingDown({ n: order.n })) : Effect.sync(() => handledB.push(order.n)), {
        group: b,
        idempotency: true
      }).pipe(Effect.forkScoped)
      const receipts = yield* Publisher.publishAll(topic, [1, 2, 3, 4].map((n) => ({ n })))
      const idOf = (n: number) => receipts[n - 1]!.id
      const total = yield* eventually(DeadLetters.count(topic).pipe(Effect.map((c) => c.total)), (t) => t === 6)
      assert.strictEqual(total, 6)
      assert.deepStrictEqual([...handledB].sort(), [1, 3])

      // list --json: every dead letter, both groups, with the reasons and the values
      const listed = json(yield* cli(["dlq", "list", topic.name, "--json"]))
      assert.strictEqual(listed.destination, `${topic.name}.dlq`)
      assert.strictEqual(listed.total, 6)
      assert.deepStrictEqual(listed.byGroup, { [a]: 4, [b]: 2 })
      const rows = listed.deadLetters
        .map((dl: any) => `${dl.group === a ? "a" : "b"} ${dl.value.n} ${dl.errorTag} ${dl.id === idOf(dl.value.n)}`)
        .sort()
      assert.deepStrictEqual(rows, [
        "a 1 CardDeclined true",
        "a 2 CardDeclined true",
        "a 3 CardDeclined true",
        "a 4 CardDeclined true",
        "b 2 ShippingDown true",
        "b 4 ShippingDown true"
      ])
      for (const dl of listed.deadLetters) {
        assert.include(dl.reason, dl.group === a ? `card declined for order ${dl.value.n}` : `shipping service down for order ${dl.value.n}`)
      }
      assert.strictEqual(Object.values(listed.byReason).reduce((x: number, y: any) => x + y, 0), 6)

      // the text form of one group
      const text = yield* cli(["dlq", "list", topic.name, "--group", b])
      assert.strictEqual(text.code, 0, text.stderr)
      assert.match(text.stdout, /^ID +GROUP +ERROR +ATTEMPTS +DEAD-LETTERED AT +REASON$/m)
      assert.include(text.stdout, idOf(2))
      assert.include(text.stdout, idOf(4))
      assert.notInclude(text.stdout, idOf(1))
      assert.match(text.stdout, /^2 dead letters in /m)

      // the fix is deployed: a dry run first (nothing moves), then the redrive of group a only
      yield* Ref.set(aBroken, false)
      const dry = json(yield* cli(["dlq", "redrive", topic.name, "--group", a, "--dry-run", "--json"]))
      assert.deepInclude(dry, { dryRun: true, retained: 6, matched: 4, redriven: 4 })
      assert.strictEqual(yield* DeadLetters.count(topic).pipe(Effect.map((c) => c.total)), 6)
      assert.strictEqual(handledA.length, 0)
      const redriven = yield* cli(["dlq", "redrive", topic.name, "--group", a, "--json"])
      assert.strictEqual(redriven.code, 0, redriven.stderr)
      assert.deepInclude(json(redriven), { broker: "kafka", dryRun: false, retained: 6, matched: 4, redriven: 4, kept: 2, notRemoved: 0 })

      // only group a reprocesses them (as redriven copies meant for it); b acks the copies without its handler
      assert.strictEqual(yield* eventually(Effect.sync(() => handledA.length), (n) => n === 4), 4)
      assert.deepStrictEqual(handledA.map((h) => `${h.n} ${h.redriveGroup === a}`).sort(), ["1 true", "2 true", "3 true", "4 true"])
      // both groups consumed the 4 originals and the 4 copies
      assert.strictEqual(yield* eventually(Effect.orDie(lagOf(topic.name, a)), (n) => n === 0), 0)
      assert.strictEqual(yield* eventually(Effect.orDie(lagOf(topic.name, b)), (n) => n === 0), 0)
      assert.deepStrictEqual([...handledB].sort(), [1, 3])
      const left = json(yield* cli(["dlq", "list", topic.name, "--json"]))
      assert.strictEqual(left.total, 2)
      assert.deepStrictEqual(left.byGroup, { [b]: 2 })
      assert.deepStrictEqual(left.deadLetters.map((dl: any) => dl.value.n).sort(), [2, 4])

      // purge group b's: they are gone
      const purged = yield* cli(["dlq", "purge", topic.name, "--group", b])
      assert.strictEqual(purged.code, 0, purged.stderr)
      assert.match(purged.stdout, /^purged 2 of 2 dead letters from /m)
      const none = json(yield* cli(["dlq", "list", topic.name, "--json"]))
      assert.strictEqual(none.total, 0)
      assert.deepStrictEqual(none.deadLetters, [])
      assert.strictEqual((yield* DeadLetters.count(topic)).total, 0)
      // nobody handled anything more
      assert.strictEqual(handledA.length, 4)
      assert.deepStrictEqual([...handledB].sort(), [1, 3])
    }))
})
