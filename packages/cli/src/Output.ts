/**
 * Text output helpers: aligned tables and JSON lines.
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"

/**
 * An aligned text table: a header row, a rule, then the rows; cells are padded to the widest in their column.
 *
 * @example
 * ```ts
 * import { Output } from "@switchyard/cli"
 * Output.table(["reason", "count"], [["boom", "2"], ["bad json", "1"]])
 * // "reason    count\n--------  -----\nboom      2\nbad json  1"
 * ```
 * @since 0.1.0
 */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}

/**
 * Cuts a text to `max` characters (with an ellipsis), on one line.
 *
 * @example
 * ```ts
 * import { Output } from "@switchyard/cli"
 * Output.truncate("handler failed: boom", 10) // "handler f…"
 * ```
 * @since 0.1.0
 */
export const truncate = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ")
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1))}…`
}

/**
 * Prints a value as one line of JSON on stdout (the `--json` output of every command).
 *
 * @example
 * ```ts
 * import { Output } from "@switchyard/cli"
 * const program = Output.printJson({ published: 3 })
 * ```
 * @since 0.1.0
 */
export const printJson = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value))

/**
 * An epoch-milliseconds time as ISO 8601.
 *
 * @example
 * ```ts
 * import { Output } from "@switchyard/cli"
 * Output.iso(0) // "1970-01-01T00:00:00.000Z"
 * ```
 * @since 0.1.0
 */
export const iso = (millis: number): string => Number.isFinite(millis) ? new Date(millis).toISOString() : "-"
