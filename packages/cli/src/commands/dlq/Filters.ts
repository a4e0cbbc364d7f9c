/**
 * The filter flags the `dlq` commands share (`--group`, `--reason`, `--error-tag`, `--id`, `--since`,
 * `--until`, `--destination`), and their translation into a `DeadLetters.Filter`.
 *
 * @since 0.1.0
 */
import { Broker, type DeadLetters } from "@switchyard/core"
import { Clock, Effect, Option } from "effect"
import { Flag } from "effect/cli"
import * as Failure from "../../Failure.ts"

const units: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * Parses a time flag: an age (`90s`, `30m`, `2h`, `7d`: that long before `now`) or a date (ISO 8601, e.g.
 * `2026-12-01T10:00:00Z`), to epoch milliseconds.
 *
 * @example
 * ```ts
 * import { Filters } from "@switchyard/cli"
 * Filters.parseTime("2h", 10_000_000) // Option.some(2_800_000)
 * Filters.parseTime("1970-01-01T00:00:01Z", 0) // Option.some(1000)
 * ```
 * @since 0.1.0
 */
export const parseTime = (text: string, now: number): Option.Option<number> => {
  const age = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim())
  if (age !== null) return Option.some(now - Number(age[1]) * (units[age[2] ?? "ms"] ?? 1))
  const date = Date.parse(text)
  return Number.isFinite(date) ? Option.some(date) : Option.none()
}

/**
 * The shared filter flags.
 *
 * @since 0.1.0
 */
export const flags = {
  group: Flag.String("group").pipe(Flag.withDescription("Only those the consumer group dead-lettered"), Flag.optional),
  reason: Flag.String("reason").pipe(Flag.withDescription("Only those whose reason contains this text"), Flag.optional),
  errorTag: Flag.String("error-tag").pipe(
    Flag.withDescription("Only those of this error tag (DecodeError, Defect, HandlerTimeoutError, …)"),
    Flag.optional
  ),
  since: Flag.String("since").pipe(
    Flag.withDescription("Only those dead-lettered since: an age (30m, 2h, 7d) or a date (ISO 8601)"),
    Flag.optional
  ),
  until: Flag.String("until").pipe(
    Flag.withDescription("Only those dead-lettered until: an age (30m, 2h, 7d) or a date (ISO 8601)"),
    Flag.optional
  ),
  destination: Flag.String("destination").pipe(
    Flag.withDescription("The dead-letter destination, when not <topic>.dlq"),
    Flag.optional
  )
} as const

/**
 * The values of the shared filter flags.
 *
 * @since 0.1.0
 */
export interface Values {
  readonly group: Option.Option<string>
  readonly reason: Option.Option<string>
  readonly errorTag: Option.Option<string>
  readonly since: Option.Option<string>
  readonly until: Option.Option<string>
  readonly destination: Option.Option<string>
}

const time = (flag: string, value: Option.Option<string>, now: number) =>
  Option.match(value, {
    onNone: () => Effect.succeed(undefined),
    onSome: (text) =>
      Option.match(parseTime(text, now), {
        onNone: () => Effect.fail(Failure.usage(`--${flag} "${text}" is neither an age (30m, 2h, 7d) nor a date`)),
        onSome: (millis) => Effect.succeed(millis)
      })
  })

/**
 * The `DeadLetters` filter and source of the flags' values; fails on an unreadable time, and with exit code
 * 3 on a broker that keeps no dead letters (no `Broker.browse`).
 *
 * @example
 * ```ts
 * import { Option } from "effect"
 * import { Filters } from "@switchyard/cli"
 * const filter = Filters.toFilter({
 *   group: Option.some("billing"), reason: Option.none(), errorTag: Option.none(),
 *   since: Option.some("2h"), until: Option.none(), destination: Option.none()
 * })
 * ```
 * @since 0.1.0
 */
export const toFilter = Effect.fn("Filters.toFilter")(function*(values: Values) {
  const broker = yield* Broker.Broker
  if (broker.browse === undefined) {
    return yield* Failure.unsupported(`the ${broker.system} broker keeps no dead letters (it retains no messages)`)
  }
  const now = yield* Clock.currentTimeMillis
  const filter: DeadLetters.Filter & DeadLetters.Source = {
    group: Option.getOrUndefined(values.group),
    reason: Option.getOrUndefined(values.reason),
    errorTag: Option.getOrUndefined(values.errorTag),
    since: yield* time("since", values.since, now),
    until: yield* time("until", values.until, now),
    destination: Option.getOrUndefined(values.destination)
  }
  return filter
})

/**
 * The dead-letter destination of a topic under the flags.
 *
 * @example
 * ```ts
 * import { Option } from "effect"
 * import { Filters } from "@switchyard/cli"
 * Filters.destinationOf("orders", Option.none()) // "orders.dlq"
 * ```
 * @since 0.1.0
 */
export const destinationOf = (topic: string, destination: Option.Option<string>): string =>
  Option.getOrElse(destination, () => `${topic}.dlq`)

/**
 * A reasons table's rows, the most frequent first.
 *
 * @example
 * ```ts
 * import { Filters } from "@switchyard/cli"
 * Filters.countRows({ boom: 1, "bad json": 3 }) // [["bad json", "3"], ["boom", "1"]]
 * ```
 * @since 0.1.0
 */
export const countRows = (counts: Readonly<Record<string, number>>): ReadonlyArray<ReadonlyArray<string>> =>
  Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([name, n]) => [name, String(n)])
