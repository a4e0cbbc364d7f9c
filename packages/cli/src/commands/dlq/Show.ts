/**
 * `switchyard dlq show <topic> <id>`: one dead letter in full (reason, origin, headers, payload).
 *
 * @since 0.1.0
 */
import { DeadLetters } from "@switchyard/core"
import { Console, Effect, Option, Result, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as BrokerSelection from "../../BrokerSelection.ts"
import * as Failure from "../../Failure.ts"
import * as Output from "../../Output.ts"
import * as Topics from "../../Topics.ts"
import * as Filters from "./Filters.ts"
import * as DlqJson from "./Json.ts"

/**
 * A dead letter in full, for people (pure).
 *
 * @example
 * ```ts
 * import type { DeadLetters } from "@switchyard/core"
 * import { DlqShow } from "@switchyard/cli"
 * declare const deadLetter: DeadLetters.DeadLetter<unknown>
 * const text = DlqShow.render(deadLetter)
 * ```
 * @since 0.1.0
 */
export const render = (dl: DeadLetters.DeadLetter<unknown>): string =>
  [
    `id                 ${dl.original.id}`,
    `dead letter id     ${dl.envelope.id}`,
    `group              ${dl.originGroup || "-"}`,
    `reason             ${dl.reason}`,
    `error tag          ${dl.errorTag || "-"}`,
    `attempts           ${dl.attempts}`,
    `dead-lettered at   ${Output.iso(dl.deadLetteredAt)}`,
    `origin             ${dl.originDestination || "-"} ${dl.originCoordinates}`,
    `form               ${dl.form}${dl.redrivable ? "" : " (cannot be redriven)"}`,
    `key                ${dl.original.key ?? "-"}`,
    `headers            ${JSON.stringify(dl.original.headers)}`,
    `payload`,
    Result.isSuccess(dl.value)
      ? JSON.stringify(dl.value.success, null, 2)
      : `(not JSON: ${dl.value.failure.message})\n${Topics.text(dl.original.payload)}`
  ].join("\n")

/**
 * The `dlq show` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("show", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic")),
  id: Argument.String("id").pipe(Argument.withDescription("The original message id (or the dead letter's own id)")),
  destination: Filters.flags.destination,
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print the dead letter as JSON"), Flag.withDefault(false))
}, (options) =>
  BrokerSelection.withBroker(Effect.gen(function*() {
    yield* Filters.toFilter({
      group: Option.none(),
      reason: Option.none(),
      errorTag: Option.none(),
      since: Option.none(),
      until: Option.none(),
      destination: options.destination
    })
    const destination = Filters.destinationOf(options.topic, options.destination)
    const found = yield* Stream.runHead(
      DeadLetters.list(Topics.json(options.topic), {
        destination,
        predicate: (dl) => dl.original.id === options.id || dl.envelope.id === options.id
      })
    )
    if (Option.isNone(found)) {
      return yield* Failure.notFound(`no dead letter with id "${options.id}" in ${destination}`)
    }
    yield* options.json ? Output.printJson(DlqJson.toJson(found.value)) : Console.log(render(found.value))
  }))).pipe(
  Command.withDescription("Show one dead letter in full; exit code 4 when there is none with that id"),
  Command.withExamples([{ command: "switchyard --broker jetstream dlq show orders o-1", description: "The dead letter of o-1" }])
)
