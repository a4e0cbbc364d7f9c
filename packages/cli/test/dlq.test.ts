import { assert, describe, layer } from "@effect/vitest"
import { AmqpBroker } from "@switchyard/amqp"
import { Broker, Consumer, DeadLetters, Headers, Publisher, Switchyard, Topic } from "@switchyard/core"
import { NatsBroker } from "@switchyard/nats"
import { Data, Duration, Effect, Layer, Redacted, Ref, References, Schedule, Schema } from "effect"
import { json, run, unique } from "./helpers.ts"

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

const eventually = <A, E, R>(observe: Effect.Effect<A, E, R>, check: (a: A) => boolean, within: Duration.Input = "30 seconds") =>
  observe.pipe(
    Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: check }),
    Effect.timeoutOrElse({ duration: Duration.fromInputUnsafe(within), orElse: () => observe })
  )

const lagOf = (destination: string, group: string) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    return yield* broker.lag!(destination, group)
  })

const cli = (args: ReadonlyArray<string>) => Effect.promise(() => run(args))

const brokers: Record<string, Layer.Layer<Broker.Broker, unknown>> = {
  amqp: AmqpBroker.layer({
    hostname: "127.0.0.1",
    username: "guest",
    password: Redacted.make("guest"),
    connectionName: "switchyard-cli-tests"
  }),
  jetstream: NatsBroker.layer({ connection: { servers: "nats://127.0.0.1:4222", name: "switchyard-cli-tests" } })
}

// Each dead letter logs a warning: keep the output quiet.
const quiet = Layer.succeed(References.MinimumLogLevel, "Error")

for (const [name, live] of Object.entries(brokers)) {
  describe(`dlq on ${name}`, () => {
    layer(Switchyard.on(live).pipe(Layer.provideMerge(quiet)), { timeout: "240 seconds", excludeTestServices: true })((it) => {
      it.effect("two groups' dead letters: list shows both groups' reasons; redrive --group a reprocesses only in a; purge --group b", () =>
        Effect.gen(function*() {
          const topic = Topic.make(unique("orders"), Order)
          const a = unique("billing")
          const b = unique("shipping")
          const broker = ["--broker", name]
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
          // both groups are registered at the broker before anything is published (RabbitMQ: their queues)
          yield* eventually(Effect.result(lagOf(topic.name, a)), (r) => r._tag === "Success")
          yield* eventually(Effect.result(lagOf(topic.name, b)), (r) => r._tag === "Success")
          const receipts = yield* Publisher.publishAll(topic, [1, 2, 3, 4].map((n) => ({ n })))
          const idOf = (n: number) => receipts[n - 1]!.id
          const total = yield* eventually(DeadLetters.count(topic).pipe(Effect.map((c) => c.total)), (t) => t === 6)
          assert.strictEqual(total, 6)

          // list --json: every dead letter, both groups, with the reasons and the values
          const listed = json(yield* cli([...broker, "dlq", "list", topic.name, "--json"]))
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
          assert.deepStrictEqual(Object.values(listed.byReason).reduce((x: number, y: any) => x + y, 0), 6)

          // the text form: a table, then the reasons with their counts
          const text = yield* cli([...broker, "dlq", "list", topic.name, "--group", b])
          assert.strictEqual(text.code, 0, text.stderr)
          assert.match(text.stdout, /^ID +GROUP +ERROR +ATTEMPTS +DEAD-LETTERED AT +REASON$/m)
          assert.include(text.stdout, idOf(2))
          assert.include(text.stdout, idOf(4))
          assert.notInclude(text.stdout, idOf(1))
          assert.match(text.stdout, /^REASON +COUNT$/m)
          assert.match(text.stdout, /shipping service down for order 2.* 1$/m)
          assert.match(text.stdout, /^2 dead letters in /m)

          // filters: reason substring, since
          assert.strictEqual(json(yield* cli([...broker, "dlq", "list", topic.name, "--reason", "order 2", "--json"])).total, 2)
          assert.strictEqual(json(yield* cli([...broker, "dlq", "list", topic.name, "--since", "1h", "--json"])).total, 6)
          assert.strictEqual(json(yield* cli([...broker, "dlq", "list", topic.name, "--since", "2099-01-01T00:00:00Z", "--json"])).total, 0)
          assert.strictEqual(json(yield* cli([...broker, "dlq", "list", topic.name, "--limit", "2", "--json"])).total, 2)

          // show: one in full; an unknown id exits 4
          const shown = yield* cli([...broker, "dlq", "show", topic.name, idOf(3)])
          assert.strictEqual(shown.code, 0, shown.stderr)
          assert.match(shown.stdout, new RegExp(`^group +${a.replace(/\./g, "\\.")}$`, "m"))
          assert.match(shown.stdout, /^reason +.*card declined for order 3/m)
          assert.include(shown.stdout, '"n": 3')
          const missing = yield* cli([...broker, "dlq", "show", topic.name, "no-such-id"])
          assert.strictEqual(missing.code, 4)
          assert.strictEqual(missing.stderr, `switchyard: no dead letter with id "no-such-id" in ${topic.name}.dlq\n`)

          // the fix is deployed: a dry run first, then the redrive of group a only
          yield* Ref.set(aBroken, false)
          const dry = json(yield* cli([...broker, "dlq", "redrive", topic.name, "--group", a, "--dry-run", "--json"]))
          assert.deepInclude(dry, { dryRun: true, retained: 6, matched: 4, redriven: 4 })
          assert.strictEqual(yield* DeadLetters.count(topic).pipe(Effect.map((c) => c.total)), 6)
          const redriven = yield* cli([...broker, "dlq", "redrive", topic.name, "--group", a, "--json"])
          assert.strictEqual(redriven.code, 0, redriven.stderr)
          assert.deepInclude(json(redriven), { dryRun: false, retained: 6, matched: 4, redriven: 4, kept: 2, notRemoved: 0 })

          // only group a reprocesses them (as redriven copies meant for it); b acks the copies without its handler
          assert.strictEqual((yield* eventually(Effect.sync(() => handledA.length), (n) => n === 4)), 4)
          assert.deepStrictEqual(handledA.map((h) => `${h.n} ${h.redriveGroup === a}`).sort(), ["1 true", "2 true", "3 true", "4 true"])
          assert.strictEqual(yield* eventually(Effect.orDie(lagOf(topic.name, b)), (n) => n === 0), 0)
          assert.strictEqual(yield* eventually(Effect.orDie(lagOf(topic.name, a)), (n) => n === 0), 0)
          assert.deepStrictEqual([...handledB].sort(), [1, 3])
          const left = json(yield* cli([...broker, "dlq", "list", topic.name, "--json"]))
          assert.strictEqual(left.total, 2)
          assert.deepStrictEqual(left.byGroup, { [b]: 2 })

          // purge group b's: a dry run removes nothing, then they are gone for good
          const dryPurge = json(yield* cli([...broker, "dlq", "purge", topic.name, "--group", b, "--dry-run", "--json"]))
          assert.deepInclude(dryPurge, { dryRun: true, matched: 2, purged: 2 })
          assert.strictEqual(json(yield* cli([...broker, "dlq", "list", topic.name, "--json"])).total, 2)
          const purged = yield* cli([...broker, "dlq", "purge", topic.name, "--group", b])
          assert.strictEqual(purged.code, 0, purged.stderr)
          assert.match(purged.stdout, /^purged 2 of 2 dead letters from /m)
          assert.match(purged.stderr, /^purge: 2\/2 100%.*purged 2$/m)
          assert.strictEqual(purged.stderr.split("\n").filter((l) => l.startsWith("purge: 2/2")).length, 1)
          assert.strictEqual(json(yield* cli([...broker, "dlq", "list", topic.name, "--json"])).total, 0)
          assert.deepStrictEqual([...handledB].sort(), [1, 3])
        }))
    })
  })
}
