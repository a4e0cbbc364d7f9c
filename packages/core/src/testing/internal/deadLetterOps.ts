/**
 * Conformance cases for `DeadLetters` over `Broker.browse`: messages dead-lettered by two consumer groups are
 * listed with their reasons and origin groups and counted; a dry run changes nothing; a redrive filtered by
 * group makes only that group reprocess its dead letters (the other group, whose idempotency ledger has the
 * ids, handles none again) and loses nothing; a purge filtered by group empties the rest. A broker without
 * `browse` must not claim to be persistent. Needs `consumerGroups` (two groups that each get every message).
 * Registered by `Conformance.suite`.
 */
import { assert, type Vitest } from "@effect/vitest"
import type { Scope } from "effect"
import { Duration, Effect, Exit, Result, Schedule, Schema, Stream } from "effect"
import * as Scope_ from "effect/Scope"
import type { Subscription } from "../../Broker.ts"
import { Broker } from "../../Broker.ts"
import type { Capabilities } from "../../Capabilities.ts"
import * as Consumer from "../../Consumer.ts"
import * as DeadLetters from "../../DeadLetters.ts"
import { type OutgoingMessage, outgoing } from "../../Envelope.ts"
import type { SubscribeError } from "../../Errors.ts"
import * as Topic from "../../Topic.ts"

/** What the suite shares with these cases. */
export interface Harness {
  readonly capabilities: Capabilities
  readonly scale: number
  readonly idle: Duration.Duration
  readonly fresh: (label: string) => Effect.Effect<string, never, Broker>
  readonly open: (destination: string, group: string) => Effect.Effect<Subscription, SubscribeError, Broker | Scope.Scope>
}

const Payload = Schema.Struct({ n: Schema.Number, key: Schema.String })
type Payload = typeof Payload.Type

class Declined extends Schema.TaggedError<Declined>()("Declined", { n: Schema.Number }) {
  override get message(): string {
    return `declined order ${this.n}`
  }
}

const encoder = new TextEncoder()

/** Polls `condition` every `every` until it holds, failing the case after `within`. */
const eventually = (condition: Effect.Effect<boolean, unknown, Broker>, within: Duration.Duration, every: Duration.Input) =>
  condition.pipe(
    Effect.flatMap((holds) => holds ? Effect.void : Effect.fail("not yet" as const)),
    Effect.retry(Schedule.spaced(every)),
    Effect.timeout(within)
  )

/**
 * Registers the cases.
 */
export const register = (it: Vitest.MethodsNonLive<Broker>, harness: Harness): void => {
  const { capabilities: caps, scale } = harness
  const within = Duration.seconds(60 * scale)

  if (caps.atMostOnce) return
  // The case needs two groups that each get every message (a broker of competing consumers only, like SQS
  // without SNS fan-out, has one audience per destination).
  if (!caps.consumerGroups) return

  it.effect("dead letters of two groups: listed with reasons and origin groups, counted; a dry run changes nothing; redrive({ group }) makes only that group reprocess them; purge({ group }) empties the rest", () =>
    Effect.gen(function*() {
      const broker = yield* Broker
      const destination = yield* harness.fresh("dlqops")
      const topic = Topic.make(destination, Payload, { key: (p) => p.key })
      if (broker.browse === undefined) {
        // A broker that keeps no dead letters must not claim to keep messages.
        assert.isFalse(caps.persistent, `${broker.system} is persistent but has no Broker.browse`)
        const error = yield* Effect.flip(DeadLetters.count(topic))
        assert.strictEqual(error._tag, "SubscribeError")
        return
      }
      const count = 30
      const failsIn = { a: (n: number) => n % 3 === 0, b: (n: number) => n % 5 === 0 }
      const expected = {
        a: Array.from({ length: count }, (_, n) => n + 1).filter(failsIn.a),
        b: Array.from({ length: count }, (_, n) => n + 1).filter(failsIn.b)
      }
      const runs = { a: new Map<number, number>(), b: new Map<number, number>() }
      const fixed = { a: false, b: false }
      const total = (group: "a" | "b") => [...runs[group].values()].reduce((x, y) => x + y, 0)
      const handler = (group: "a" | "b") => ({ n }: Payload) =>
        Effect.suspend(() => {
          runs[group].set(n, (runs[group].get(n) ?? 0) + 1)
          return !fixed[group] && failsIn[group](n) ? Effect.fail(new Declined({ n })) : Effect.void
        })

      // Both groups exist before anything is published (brokers without history, e.g. RabbitMQ queues).
      yield* Effect.scoped(harness.open(destination, "a"))
      yield* Effect.scoped(harness.open(destination, "b"))
      const consumers = yield* Scope_.make()
      yield* Consumer.start(topic, handler("a"), { group: "a", idempotency: true }).pipe(Scope_.provide(consumers))
      yield* Consumer.start(topic, handler("b"), { group: "b", idempotency: true }).pipe(Scope_.provide(consumers))

      const sent: ReadonlyArray<OutgoingMessage> = Array.from({ length: count }, (_, i) =>
        outgoing(encoder.encode(JSON.stringify({ n: i + 1, key: `k${i % 4}` })), {
          id: `${destination}-${i + 1}`,
          key: `k${i % 4}`,
          contentType: "application/json"
        }))
      yield* broker.publish(destination, sent)
      yield* eventually(Effect.sync(() => runs.a.size === count && runs.b.size === count), within, "50 millis")
      const parked = expected.a.length + expected.b.length
      yield* eventually(Effect.map(DeadLetters.count(topic), (c) => c.total >= parked), within, Duration.millis(500 * scale))

      // Listed with reasons, error tags, attempts and origin.
      const listed = yield* Stream.runCollect(DeadLetters.list(topic))
      assert.strictEqual(listed.length, parked)
      const numbersOf = (group: string) =>
        listed.filter((dl) => dl.originGroup === group).map((dl) =>
          Result.isSuccess(dl.value) ? dl.value.success.n : -1
        ).sort((x, y) => x - y)
      assert.deepStrictEqual(numbersOf("a"), expected.a)
      assert.deepStrictEqual(numbersOf("b"), expected.b)
      for (const dl of listed) {
        const n = Result.isSuccess(dl.value) ? dl.value.success.n : -1
        assert.isTrue(dl.isDeadLetter)
        assert.strictEqual(dl.reason, `declined order ${n}`)
        assert.strictEqual(dl.errorTag, "Declined")
        assert.strictEqual(dl.attempts, 1)
        assert.strictEqual(dl.originDestination, destination)
        assert.strictEqual(dl.original.id, `${destination}-${n}`)
        assert.strictEqual(dl.original.key, `k${(n - 1) % 4}`)
        assert.isAbove(dl.deadLetteredAt, 0)
        assert.notStrictEqual(dl.originCoordinates, "")
      }
      const onlyB = yield* Stream.runCollect(DeadLetters.list(topic, { group: "b", reason: "declined" }))
      assert.strictEqual(onlyB.length, expected.b.length)

      const counts = yield* DeadLetters.count(topic)
      assert.strictEqual(counts.total, parked)
      assert.deepStrictEqual(counts.byGroup, { a: expected.a.length, b: expected.b.length })
      assert.deepStrictEqual(counts.byErrorTag, { Declined: parked })
      assert.strictEqual((yield* DeadLetters.count(topic, { id: `${destination}-15` })).total, 2)

      // A dry run publishes and removes nothing.
      const dry = yield* DeadLetters.redrive(topic, { dryRun: true })
      assert.deepStrictEqual([dry.retained, dry.matched, dry.redriven, dry.kept, dry.dryRun], [parked, parked, parked, parked, true])
      const dryPurge = yield* DeadLetters.purge(topic, { dryRun: true })
      assert.deepStrictEqual([dryPurge.matched, dryPurge.kept], [parked, parked])
      assert.strictEqual((yield* DeadLetters.count(topic)).total, parked)

      // Group "a" is fixed; only its dead letters are redriven, and only "a" handles them again.
      fixed.a = true
      const progress: Array<DeadLetters.Progress> = []
      const summary = yield* DeadLetters.redrive(topic, {
        group: "a",
        onProgress: (p) => Effect.sync(() => progress.push(p))
      })
      assert.deepStrictEqual(
        [summary.retained, summary.seen, summary.matched, summary.redriven, summary.kept, summary.notRemoved],
        [parked, parked, expected.a.length, expected.a.length, expected.b.length, 0]
      )
      assert.strictEqual(progress.at(-1)?.done, expected.a.length)
      yield* eventually(Effect.sync(() => total("a") >= count + expected.a.length), within, "50 millis")
      // Give any extra delivery time to show up, then check nothing ran twice beyond the redriven ones.
      yield* Effect.sleep(harness.idle)
      for (let n = 1; n <= count; n++) {
        assert.strictEqual(runs.a.get(n), failsIn.a(n) ? 2 : 1, `group a ran ${n} ${runs.a.get(n)} times`)
        assert.strictEqual(runs.b.get(n), 1, `group b ran ${n} ${runs.b.get(n)} times`)
      }

      // Nothing lost or stuck: only b's are left, and nothing came back for "a".
      const left = yield* Stream.runCollect(DeadLetters.list(topic))
      assert.deepStrictEqual(left.map((dl) => dl.originGroup), Array(expected.b.length).fill("b"))

      const purged = yield* DeadLetters.purge(topic, { group: "b" })
      assert.deepStrictEqual([purged.matched, purged.purged, purged.kept], [expected.b.length, expected.b.length, 0])
      assert.strictEqual((yield* DeadLetters.count(topic)).total, 0)
      yield* Scope_.close(consumers, Exit.void)
    }), { timeout: 300_000 })
}
