/**
 * `switchyard dlq redrive <topic>`: republishes matching dead letters to where they came from (only the
 * group that dead-lettered each reprocesses it) and removes each once the broker confirmed its copy.
 *
 * @since 0.1.0
 */
import { Broker, DeadLetters } from "@switchyard/core"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as BrokerSelection from "../../BrokerSelection.ts"
import * as Output from "../../Output.ts"
import * as ProgressBar from "../../ProgressBar.ts"
import * as Topics from "../../Topics.ts"
import * as Filters from "./Filters.ts"

/**
 * The summary of a redrive, for people (pure).
 *
 * @example
 * ```ts
 * import type { DeadLetters } from "@switchyard/core"
 * import { DlqRedrive } from "@switchyard/cli"
 * declare const summary: DeadLetters.RedriveSummary
 * const text = DlqRedrive.render("orders.dlq", summary)
 * ```
 * @since 0.1.0
 */
export const render = (destination: string, s: DeadLetters.RedriveSummary): string =>
  [
    s.dryRun
      ? `dry run: would redrive ${s.redriven} of ${s.retained} dead letters in ${destination} (nothing published or removed)`
      : `redrove ${s.redriven} of ${s.retained} dead letters from ${destination} in ${
        ProgressBar.formatDuration(s.elapsedMillis)
      } (${Math.round(s.ratePerSecond)} msg/s); ${s.kept} kept`,
    "",
    Output.table(
      ["RETAINED", "MATCHED", s.dryRun ? "WOULD REDRIVE" : "REDRIVEN", "KEPT", "UNREDRIVABLE", "NOT REMOVED"],
      [[s.retained, s.matched, s.redriven, s.kept, s.unredrivable, s.notRemoved].map(String)]
    ),
    ...(s.matched === 0
      ? []
      : ["", Output.table(["REASON", "COUNT"], Filters.countRows(s.byReason).map(([r, n]) => [Output.truncate(r ?? "", 80), n ?? ""]))])
  ].join("\n")

/**
 * The `dlq redrive` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("redrive", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic whose dead letters to redrive")),
  ...Filters.flags,
  rate: Flag.Finite("rate").pipe(Flag.withDescription("At most this many republishes per second"), Flag.optional),
  limit: Flag.Int("limit").pipe(Flag.withDescription("Redrive at most this many"), Flag.optional),
  dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("Count what would be redriven; publish and remove nothing"), Flag.withDefault(false)),
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print the summary as JSON (no progress output)"), Flag.withDefault(false))
}, (options) =>
  BrokerSelection.withBroker(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const filter = yield* Filters.toFilter(options)
    const destination = Filters.destinationOf(options.topic, options.destination)
    const progress = yield* ProgressBar.reporter(options.dryRun ? "redrive (dry run)" : "redrive", {
      plain: !options.json
    })
    const verb = options.dryRun ? "would redrive" : "redriven"
    const summary = yield* DeadLetters.redrive(Topics.json(options.topic), {
      ...filter,
      rate: Option.getOrUndefined(options.rate),
      limit: Option.getOrUndefined(options.limit),
      dryRun: options.dryRun,
      onProgress: (p) => progress.update(p.seen, p.retained, `${verb} ${p.done}`)
    })
    if (options.json) {
      return yield* Output.printJson({ destination, broker: broker.system, ...summary })
    }
    yield* progress.finish(summary.seen, summary.retained, `${verb} ${summary.redriven}`)
    yield* Console.log(render(destination, summary))
  }))).pipe(
  Command.withDescription(
    "Republish matching dead letters to their origin (only the group that dead-lettered each reprocesses it) and remove each once the broker confirmed its copy: never lost, at most duplicated"
  ),
  Command.withExamples([
    { command: "switchyard --broker amqp dlq redrive orders --group billing --dry-run", description: "What would go back" },
    { command: "switchyard --broker kafka dlq redrive orders --reason declined --rate 200", description: "200 per second" }
  ])
)
