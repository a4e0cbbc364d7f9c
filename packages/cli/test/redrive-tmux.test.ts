/**
 * `dlq redrive` on a terminal: driven in tmux (a 120×30 pane), the screen shows the progress bar with its
 * rate and ETA, then the summary; every redriven message reaches the group again.
 */
import { assert, describe, layer } from "@effect/vitest"
import { AmqpBroker } from "@switchyard/amqp"
import { Broker, Consumer, DeadLetters, Publisher, Switchyard, Topic } from "@switchyard/core"
import { Data, Duration, Effect, Layer, Redacted, Ref, References, Schedule, Schema } from "effect"
import { execFileSync } from "node:child_process"
import { bin, root, unique } from "./helpers.ts"

class CardDeclined extends Data.TaggedError("CardDeclined")<{ readonly n: number }> {
  override get message() {
    return `card declined (order ${this.n % 3})`
  }
}

const Order = Schema.Struct({ n: Schema.Number })
const live = Switchyard.on(AmqpBroker.layer({
  hostname: "127.0.0.1",
  username: "guest",
  password: Redacted.make("guest"),
  connectionName: "switchyard-cli-tmux-test"
})).pipe(Layer.provideMerge(Layer.succeed(References.MinimumLogLevel, "Error")))

const eventually = <A, E, R>(observe: Effect.Effect<A, E, R>, check: (a: A) => boolean, within: Duration.Input = "60 seconds") =>
  observe.pipe(
    Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: check }),
    Effect.timeoutOrElse({ duration: Duration.fromInputUnsafe(within), orElse: () => observe })
  )

const socket = `sy-cli-${process.pid}`
const tmux = (...args: ReadonlyArray<string>) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

const count = 300

describe("dlq redrive in a terminal (tmux)", () => {
  layer(live, { timeout: "240 seconds", excludeTestServices: true })((it) => {
    it.effect("the screen shows the progress bar with rate and ETA, then the summary; nothing is lost", () =>
      Effect.gen(function*() {
        const topic = Topic.make(unique("payments"), Order)
        const group = unique("billing")
        const broken = yield* Ref.make(true)
        const handled = new Set<number>()
        yield* Consumer.run(topic, (order) =>
          Effect.gen(function*() {
            if (yield* Ref.get(broken)) return yield* new CardDeclined({ n: order.n })
            handled.add(order.n)
          }), { group, concurrency: 8, ordering: "none" }).pipe(Effect.forkScoped)
        // the group's queue is declared by its subscription: publish once the broker knows the group
        yield* eventually(Effect.result(Effect.flatMap(Broker.Broker, (b) => b.lag!(topic.name, group))), (r) => r._tag === "Success")
        yield* Publisher.publishAll(topic, Array.from({ length: count }, (_, n) => ({ n })))
        const parked = yield* eventually(DeadLetters.count(topic).pipe(Effect.map((c) => c.total)), (t) => t === count)
        assert.strictEqual(parked, count)
        yield* Ref.set(broken, false)

        const command = [
          "cd", shellQuote(root), "&&", "env", "NO_COLOR=1", shellQuote(process.execPath), "--import", "tsx", shellQuote(bin),
          "--broker", "amqp", "dlq", "redrive", shellQuote(topic.name), "--group", shellQuote(group), "--rate", "100",
          ";", "echo", "EXIT=$?", ";", "sleep", "600"
        ].join(" ")
        yield* Effect.acquireRelease(
          Effect.sync(() => tmux("new-session", "-d", "-s", "redrive", "-x", "120", "-y", "30", command)),
          () => Effect.sync(() => void tmux("kill-server"))
        )
        const screen = () => tmux("capture-pane", "-p", "-t", "redrive")
        const screens: Array<string> = []
        const final = yield* eventually(
          Effect.sync(() => {
            const s = screen()
            screens.push(s)
            return s
          }),
          (s) => s.includes("EXIT="),
          "120 seconds"
        )
        console.log(`[tmux] a screen during the redrive:\n${screens.find((s) => /\] \d+\/300 +[1-9]\d?%/.test(s)) ?? "(none captured)"}`)
        console.log(`[tmux] the final screen:\n${final}`)
        const lines = final.split("\n")
        assert.include(final, "EXIT=0")
        const bar = lines.find((l) => l.startsWith("redrive ["))
        assert.isDefined(bar, final)
        assert.match(bar!, /^redrive \[█{10,40}\] 300\/300 100%  \d+(\.\d)? msg\/s  ETA 0ms  redriven 300$/)
        assert.isAtMost(bar!.length, 120)
        assert.match(final, /^redrove 300 of 300 dead letters from \S+ in \S+ \(\d+ msg\/s\); 0 kept$/m)
        assert.match(final, /^RETAINED +MATCHED +REDRIVEN +KEPT +UNREDRIVABLE +NOT REMOVED$/m)
        assert.match(final, /^300 +300 +300 +0 +0 +0$/m)
        assert.match(final, /^card declined \(order 0\) +100$/m)
        // the bar was redrawn in place: one bar line on the screen, not one per update
        assert.strictEqual(lines.filter((l) => l.startsWith("redrive [")).length, 1)

        // nothing lost: every one reached the group again, and the dead-letter queue is empty
        assert.strictEqual(yield* eventually(Effect.sync(() => handled.size), (n) => n === count), count)
        assert.strictEqual(yield* DeadLetters.count(topic).pipe(Effect.map((c) => c.total)), 0)
      }))
  })
})
