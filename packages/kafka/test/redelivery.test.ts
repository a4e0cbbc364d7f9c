/**
 * Redelivery and shutdown through the typed paths (`Consumer.run`) against the real broker:
 * - a typed `nack` brings the message back in the same process, and to the next member after a stop;
 * - the graceful drain commits only what was handled: deliveries buffered but not started go to the next
 *   member at once (the first member leaves the group; its session timeout is longer than the test waits);
 * - SIGTERM under load (a child process under `NodeRuntime.runMain`): the next process handles nothing the
 *   first one handled, and together they handle everything.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, layer } from "@effect/vitest"
import { Data, Deferred, Duration, Effect, Fiber, Schedule, Schema } from "effect"
import { Broker, Consumer, Envelope, Topic } from "@switchyard/core"
import { KafkaTopology } from "../src/index.ts"
import { brokers, committed, testLayer, unique } from "./helpers.ts"

const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })
const encoder = new TextEncoder()

const orderMessage = (id: string, n: number) =>
  Envelope.outgoing(encoder.encode(JSON.stringify({ id, n })), { id, key: id, contentType: "application/json" })

class Refused extends Data.TaggedError("Refused")<{}> {}

/** A session timeout longer than any wait below: a member that did not leave the group would block the next. */
const slowSession = testLayer({
  consumer: {
    sessionTimeout: "45 seconds",
    heartbeatInterval: "1 second",
    rebalanceTimeout: "45 seconds",
    commitInterval: "50 millis",
    drainTimeout: "3 seconds"
  }
})

/** Waits for `done` (the test's own bound, far below the 45 s session timeout). */
const within = <A, E>(effect: Effect.Effect<A, E>, what: string) =>
  effect.pipe(Effect.timeoutOrElse({ duration: "25 seconds", orElse: () => Effect.fail(new Error(`timed out: ${what}`)) }))

describe("kafka: redelivery and shutdown", () => {
  layer(slowSession, { excludeTestServices: true, timeout: Duration.minutes(2) })((it) => {
    it.effect("typed nack: the message comes back in the same process, and to the next member once this one stops", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("nack")
        const group = unique("g")
        yield* admin.createTopics([{ topic: name, partitions: 1 }])
        yield* broker.publish(name, [orderMessage("o-1", 1)])
        const topic = Topic.make(name, Order)
        const attempts: Array<number> = []
        const again = yield* Deferred.make<void>()
        const first = yield* Consumer.run(topic, (_order, envelope) =>
          Effect.suspend(() => {
            attempts.push(envelope.attempt)
            return envelope.attempt >= 2 ? Deferred.succeed(again, undefined) : Effect.void
          }).pipe(Effect.andThen(Effect.fail(new Refused()))), { group, deadLetter: false }).pipe(Effect.forkChild)
        yield* within(Deferred.await(again), "redelivery after a typed nack")
        yield* Fiber.interrupt(first)
        assert.deepStrictEqual(attempts.slice(0, 2), [1, 2])
        // nothing was acked: the group's commit stays before it, and the next member gets it
        const offsets = yield* committed(group, name)
        assert.isAtMost(offsets.get(0)?.offset ?? -1, 0)
        const got = yield* Deferred.make<string>()
        const second = yield* Consumer.run(topic, (order) => Deferred.succeed(got, order.id), { group }).pipe(Effect.forkChild)
        assert.strictEqual(yield* within(Deferred.await(got), "the next member gets the nacked message"), "o-1")
        yield* Fiber.interrupt(second)
      }))

    it.effect("graceful drain: buffered deliveries not started are not committed and go to the next member at once", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("drain")
        const group = unique("g")
        yield* admin.createTopics([{ topic: name, partitions: 1 }])
        yield* broker.publish(name, Array.from({ length: 20 }, (_, i) => orderMessage(`o-${i}`, i)))
        const topic = Topic.make(name, Order)
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const firstHandled: Array<string> = []
        const first = yield* Consumer.run(topic, (order) =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Deferred.await(gate)),
            Effect.andThen(Effect.sync(() => firstHandled.push(order.id)))
          ), { group, prefetch: 20 }).pipe(Effect.forkChild)
        yield* within(Deferred.await(started), "the first handler starts")
        // stop while the first handler runs and the other 19 are buffered; then let the handler finish
        const stopping = yield* Fiber.interrupt(first).pipe(Effect.forkChild)
        yield* Effect.sleep("200 millis")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(stopping)
        assert.deepStrictEqual(firstHandled, ["o-0"])
        const offsets = yield* committed(group, name)
        assert.strictEqual(offsets.get(0)?.offset, 1, "committed just past the handled one")
        assert.include(["", null, undefined], offsets.get(0)?.metadata, "nothing acked beyond it")
        const rest = new Set<string>()
        const all = yield* Deferred.make<void>()
        const second = yield* Consumer.run(topic, (order) =>
          Effect.suspend(() => {
            rest.add(order.id)
            return rest.size === 19 ? Deferred.succeed(all, undefined) : Effect.void
          }), { group }).pipe(Effect.forkChild)
        yield* within(Deferred.await(all), "the next member gets the 19 buffered deliveries")
        yield* Fiber.interrupt(second)
        assert.deepStrictEqual([...rest].sort(), Array.from({ length: 19 }, (_, i) => `o-${i + 1}`).sort())
      }))

    it.effect("SIGTERM under load: the next process handles none of what the first handled, and nothing is lost", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const admin = yield* KafkaTopology.KafkaTopology
        const name = unique("sigterm")
        const group = unique("g")
        const total = 4000
        yield* admin.createTopics([{ topic: name, partitions: 4 }])
        for (let b = 0; b < total / 500; b++) {
          yield* broker.publish(name, Array.from({ length: 500 }, (_, i) => orderMessage(`o-${b * 500 + i}`, b * 500 + i)))
        }
        const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "switchyard-sigterm-"))
        const file = Path.join(work, "handled.txt")
        Fs.writeFileSync(file, "")
        const lines = () => Fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "")
        const child = spawn(process.execPath, ["--import", "tsx", Path.join(import.meta.dirname, "fixtures", "consume-until-sigterm.ts")], {
          env: { ...process.env, BROKERS: brokers(), TOPIC: name, GROUP: group, HANDLED: file },
          stdio: ["ignore", "inherit", "inherit"]
        })
        const exited = Effect.callback<number | null>((resume) => {
          if (child.exitCode !== null) resume(Effect.succeed(child.exitCode))
          else child.once("exit", (code) => resume(Effect.succeed(code)))
        })
        // under load: SIGTERM once a quarter is handled
        yield* within(
          Effect.sync(() => lines().length).pipe(Effect.repeat({ until: (n) => n >= total / 4, schedule: Schedule.spaced("20 millis") })),
          "the child handles a quarter"
        )
        child.kill("SIGTERM")
        yield* within(exited, "the child exits after SIGTERM")
        const first = lines()
        assert.strictEqual(new Set(first).size, first.length, "the first process handled each message once")
        assert.isBelow(first.length, total, "stopped mid-stream")
        const handledFirst = new Set(first)
        const second = new Set<string>()
        const duplicates: Array<string> = []
        const all = yield* Deferred.make<void>()
        const consumer = yield* Consumer.run(Topic.make(name, Order), (order) =>
          Effect.suspend(() => {
            if (handledFirst.has(order.id)) duplicates.push(order.id)
            second.add(order.id)
            return handledFirst.size + second.size - duplicates.length >= total ? Deferred.succeed(all, undefined) : Effect.void
          }), { group, concurrency: 8 }).pipe(Effect.forkChild)
        yield* within(Deferred.await(all), "the second process handles the rest")
        yield* Fiber.interrupt(consumer)
        Fs.rmSync(work, { recursive: true, force: true })
        assert.deepStrictEqual(duplicates, [], `${duplicates.length} messages handled by the first process came again`)
        assert.strictEqual(handledFirst.size + second.size, total)
      }), { timeout: 120_000 })
  })
})
