/**
 * `switchyard dlq purge <topic>`: removes matching dead letters for good.
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
 * The summary of a purge, for people (pure).
 *
 * @example
 * ```ts
 * import type { DeadLetters } from "@switchyard/core"
 * import { DlqPurge } from "@switchyard/cli"
 * declare const summary: DeadLetters.PurgeSummary
 * const text = DlqPurge.render("orders.dlq", summary)
 * ```
 * @since 0.1.0
 */
export const render = (destination: string, s: DeadLetters.PurgeSummary): string =>
  [
    s.dryRun
      ? `dry run: would purge ${s.purged} of ${s.retained} dead letters in ${destination} (nothing removed)`
      : `purged ${s.purged} of ${s.retained} dead letters from ${destination} in ${
        ProgressBar.formatDuration(s.elapsedMillis)
      }; ${s.kept} kept`,
    "",
    Output.table(
      ["RETAINED", "MATCHED", s.dryRun ? "WOULD PURGE" : "PURGED", "KEPT", "NOT REMOVED"],
      [[s.retained, s.matched, s.purged, s.kept, s.notRemoved].map(String)]
    ),
    ...(s.matched === 0
      ? []
      : ["", Output.table(["REASON", "COUNT"], Filters.countRows(s.byReason).map(([r, n]) => [Output.truncate(r ?? "", 80), n ?? ""]))])
  ].join("\n")

/**
 * The `dlq purge` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("purge", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic whose dead letters to purge")),
  ...Filters.flags,
  limit: Flag.Int("limit").pipe(Flag.withDescription("Purge at most this many"), Flag.optional),
  dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("Count what would be purged; remove nothing"), Flag.withDefault(false)),
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print the summary as JSON (no progress output)"), Flag.withDefault(false))
}, (options) =>
  BrokerSelection.withBroker(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const filter = yield* Filters.toFilter(options)
    const destination = Filters.destinationOf(options.topic, options.destination)
    const progress = yield* ProgressBar.reporter(options.dryRun ? "purge (dry run)" : "purge", { plain: !options.json })
    const verb = options.dryRun ? "would purge" : "purged"
    const summary = yield* DeadLetters.purge(Topics.json(options.topic), {
      ...filter,
      limit: Option.getOrUndefined(options.limit),
      dryRun: options.dryRun,
      onProgress: (p) => progress.update(p.seen, p.retained, `${verb} ${p.done}`)
    })
    if (options.json) {
      return yield* Output.printJson({ destination, broker: broker.system, ...summary })
    }
    yield* progress.finish(summary.seen, summary.retained, `${verb} ${summary.purged}`)
    yield* Console.log(render(destination, summary))
  }))).pipe(
  Command.withDescription("Remove matching dead letters for good (all of them without a filter)"),
  Command.withExamples([
    { command: "switchyard --broker amqp dlq purge orders --group search --dry-run", description: "What would be removed" }
  ])
)
