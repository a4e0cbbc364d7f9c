/**
 * `switchyard dlq list <topic>`: the dead letters of a topic as a table, then a summary table of reasons.
 *
 * @since 0.1.0
 */
import { DeadLetters } from "@switchyard/core"
import { Console, Effect, Option, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as BrokerSelection from "../../BrokerSelection.ts"
import * as Output from "../../Output.ts"
import * as Topics from "../../Topics.ts"
import * as Filters from "./Filters.ts"
import * as DlqJson from "./Json.ts"

/**
 * The table of dead letters and the table of reasons (pure).
 *
 * @example
 * ```ts
 * import type { DeadLetters } from "@switchyard/core"
 * import { DlqList } from "@switchyard/cli"
 * declare const deadLetters: ReadonlyArray<DeadLetters.DeadLetter<unknown>>
 * const text = DlqList.render("orders.dlq", deadLetters)
 * ```
 * @since 0.1.0
 */
export const render = (destination: string, deadLetters: ReadonlyArray<DeadLetters.DeadLetter<unknown>>): string => {
  if (deadLetters.length === 0) return `no dead letters in ${destination} match`
  const byReason: Record<string, number> = {}
  for (const dl of deadLetters) byReason[dl.reason] = (byReason[dl.reason] ?? 0) + 1
  const rows = deadLetters.map((dl) => [
    dl.original.id,
    dl.originGroup || "-",
    dl.errorTag || "-",
    String(dl.attempts),
    Output.iso(dl.deadLetteredAt),
    Output.truncate(dl.reason, 60)
  ])
  return [
    Output.table(["ID", "GROUP", "ERROR", "ATTEMPTS", "DEAD-LETTERED AT", "REASON"], rows),
    "",
    Output.table(["REASON", "COUNT"], Filters.countRows(byReason).map(([r, n]) => [Output.truncate(r ?? "", 80), n ?? ""])),
    "",
    `${deadLetters.length} dead letter${deadLetters.length === 1 ? "" : "s"} in ${destination}`
  ].join("\n")
}

/**
 * The `dlq list` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("list", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic whose dead letters to list")),
  ...Filters.flags,
  limit: Flag.Int("limit").pipe(Flag.withDescription("List at most this many"), Flag.optional),
  json: Flag.Boolean("json").pipe(
    Flag.withDescription("Print { destination, total, byReason, byGroup, deadLetters: [...] } as JSON"), Flag.withDefault(false)
  )
}, (options) =>
  BrokerSelection.withBroker(Effect.gen(function*() {
    const filter = yield* Filters.toFilter(options)
    const destination = Filters.destinationOf(options.topic, options.destination)
    const deadLetters = yield* Stream.runCollect(
      DeadLetters.list(Topics.json(options.topic), { ...filter, limit: Option.getOrUndefined(options.limit) })
    )
    if (!options.json) return yield* Console.log(render(destination, deadLetters))
    const byReason: Record<string, number> = {}
    const byGroup: Record<string, number> = {}
    for (const dl of deadLetters) {
      byReason[dl.reason] = (byReason[dl.reason] ?? 0) + 1
      byGroup[dl.originGroup] = (byGroup[dl.originGroup] ?? 0) + 1
    }
    yield* Output.printJson({
      destination,
      total: deadLetters.length,
      byReason,
      byGroup,
      deadLetters: deadLetters.map(DlqJson.toJson)
    })
  }))).pipe(
  Command.withDescription("List a topic's dead letters (a table, then the reasons with their counts); removes nothing"),
  Command.withExamples([
    { command: "switchyard --broker amqp dlq list orders --group billing --since 2h", description: "Billing's recent ones" }
  ])
)
