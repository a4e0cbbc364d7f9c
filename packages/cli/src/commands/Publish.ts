/**
 * `switchyard publish <topic> < file.jsonl`: publishes each line (a JSON value), broker-confirmed, with a
 * progress bar on a terminal and a summary.
 *
 * @since 0.1.0
 */
import { Broker, Publisher } from "@switchyard/core"
import { Array as Arr, Clock, Console, Effect, Option, Result } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { text as readAll } from "node:stream/consumers"
import * as BrokerSelection from "../BrokerSelection.ts"
import * as Failure from "../Failure.ts"
import * as Output from "../Output.ts"
import * as ProgressBar from "../ProgressBar.ts"
import * as Topics from "../Topics.ts"

const batchSize = 100

/**
 * Parses JSON lines (blank lines are skipped); fails with the first bad line's number.
 *
 * @example
 * ```ts
 * import { Publish } from "@switchyard/cli"
 * const values = Publish.parseLines('{"n":1}\n\n{"n":2}\n') // Effect succeeding with [{ n: 1 }, { n: 2 }]
 * ```
 * @since 0.1.0
 */
export const parseLines = (input: string): Effect.Effect<ReadonlyArray<unknown>, Failure.CliFailure> =>
  Effect.forEach(
    input.split("\n").map((line, index) => ({ line: line.trim(), number: index + 1 })).filter((l) => l.line !== ""),
    ({ line, number }) => {
      const parsed = Topics.parseLine(line)
      return Result.isSuccess(parsed)
        ? Effect.succeed(parsed.success)
        : Effect.fail(Failure.usage(`line ${number} is not valid JSON: ${Failure.oneLine(parsed.failure)}`))
    }
  )

const readStdin = Effect.tryPromise({
  try: () => readAll(process.stdin),
  catch: (cause) => Failure.usage(`cannot read stdin: ${String(cause)}`)
})

/**
 * The `publish` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("publish", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic (destination) to publish to")),
  key: Flag.String("key").pipe(Flag.withDescription("The key of every message (ordering, partitioning)"), Flag.optional),
  header: Flag.KeyValuePair("header").pipe(
    Flag.withDescription("A header k=v on every message (repeatable)"),
    Flag.withDefault({})
  ),
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print the summary as JSON"), Flag.withDefault(false))
}, (options) =>
  Effect.gen(function*() {
    const values = yield* Effect.flatMap(readStdin, parseLines)
    yield* BrokerSelection.withBroker(Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const publisher = yield* Publisher.Publisher
      const topic = Topics.json(options.topic)
      const key = Option.getOrUndefined(options.key)
      const progress = yield* ProgressBar.reporter("publish", { plain: false })
      const started = yield* Clock.currentTimeMillis
      const total = values.length
      yield* Effect.forEach(Arr.chunksOf(values, batchSize), (batch, index) =>
        publisher.publishMessages(topic, batch.map((value) => ({ value, options: { key, headers: options.header } })))
          .pipe(Effect.andThen(progress.update(Math.min(total, (index + 1) * batchSize), total))), { discard: true })
      yield* progress.finish(total, total)
      const elapsedMillis = (yield* Clock.currentTimeMillis) - started
      const ratePerSecond = Math.round(ProgressBar.rate({ label: "", done: total, total, elapsedMillis }))
      const summary = { topic: options.topic, broker: broker.system, published: total, elapsedMillis, ratePerSecond }
      yield* options.json
        ? Output.printJson(summary)
        : Console.log(
          `published ${total} message${total === 1 ? "" : "s"} to ${options.topic} on ${broker.system}, all confirmed, ` +
            `in ${ProgressBar.formatDuration(elapsedMillis)} (${ratePerSecond} msg/s)`
        )
    }))
  })).pipe(
  Command.withDescription(
    "Publish each line of stdin (a JSON value) to a topic; every message is confirmed by the broker"
  ),
  Command.withExamples([
    { command: "switchyard --broker amqp publish orders < orders.jsonl", description: "Publish a file" },
    { command: "switchyard publish orders --key o-1 --header source=ops --json < one.jsonl", description: "With a key and a header" }
  ])
)
