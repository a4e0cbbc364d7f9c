/**
 * The progress bar of long commands (`publish`, `dlq redrive`, `dlq purge`): a pure rendering function
 * (unit-tested) and a reporter that redraws it on a terminal or prints plain progress lines otherwise.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Ref } from "effect"

/**
 * Where a long command stands.
 *
 * @since 0.1.0
 */
export interface State {
  readonly label: string
  /** Messages done so far. */
  readonly done: number
  /** Messages to do (0 when unknown or nothing to do). */
  readonly total: number
  readonly elapsedMillis: number
  /** Shown after the figures (e.g. `redriven 40`). */
  readonly note?: string | undefined
}

/**
 * Messages per second so far (0 before any time has passed).
 *
 * @example
 * ```ts
 * import { ProgressBar } from "@switchyard/cli"
 * ProgressBar.rate({ label: "redrive", done: 500, total: 1000, elapsedMillis: 2000 }) // 250
 * ```
 * @since 0.1.0
 */
export const rate = (state: State): number => state.elapsedMillis > 0 ? (state.done * 1000) / state.elapsedMillis : 0

/**
 * The estimated milliseconds left at the current rate (`undefined` while the rate is unknown).
 *
 * @example
 * ```ts
 * import { ProgressBar } from "@switchyard/cli"
 * ProgressBar.etaMillis({ label: "redrive", done: 500, total: 1000, elapsedMillis: 2000 }) // 2000
 * ```
 * @since 0.1.0
 */
export const etaMillis = (state: State): number | undefined => {
  const perSecond = rate(state)
  if (state.done >= state.total) return 0
  return perSecond > 0 ? Math.round(((state.total - state.done) * 1000) / perSecond) : undefined
}

/**
 * A duration for people: `850ms`, `12s`, `3m05s`, `1h02m`.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "@switchyard/cli"
 * ProgressBar.formatDuration(185_000) // "3m05s"
 * ```
 * @since 0.1.0
 */
export const formatDuration = (millis: number): string => {
  if (millis < 1000) return `${Math.round(millis)}ms`
  const seconds = Math.round(millis / 1000)
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`
}

const formatRate = (perSecond: number): string =>
  perSecond >= 100 ? `${Math.round(perSecond)}` : perSecond.toFixed(1)

const percent = (state: State): number =>
  state.total > 0 ? Math.min(100, Math.floor((state.done * 100) / state.total)) : 100

const stats = (state: State): string => {
  const eta = etaMillis(state)
  return `${state.done}/${state.total} ${String(percent(state)).padStart(3)}%  ${formatRate(rate(state))} msg/s  ` +
    `ETA ${eta === undefined ? "?" : formatDuration(eta)}${state.note === undefined ? "" : `  ${state.note}`}`
}

/**
 * The bar on one terminal line of `columns` characters:
 * `redrive [██████████░░░░░░░░░░] 512/1000  51%  420 msg/s  ETA 1s`.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "@switchyard/cli"
 * const line = ProgressBar.render({ label: "redrive", done: 5, total: 10, elapsedMillis: 1000 }, 60)
 * // "redrive [██████████░░░░░░░░░░] 5/10  50%  5.0 msg/s  ETA 1s" (the bar fills what the text leaves)
 * ```
 * @since 0.1.0
 */
export const render = (state: State, columns: number): string => {
  const text = stats(state)
  const room = columns - state.label.length - text.length - 4
  const width = Math.max(10, Math.min(40, room))
  const filled = state.total > 0 ? Math.min(width, Math.floor((state.done * width) / state.total)) : width
  return `${state.label} [${"█".repeat(filled)}${"░".repeat(width - filled)}] ${text}`
}

/**
 * A plain progress line, for logs and pipes: `redrive: 512/1000  51%  420 msg/s  ETA 1s`.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "@switchyard/cli"
 * ProgressBar.plainLine({ label: "purge", done: 10, total: 10, elapsedMillis: 500 }) // "purge: 10/10 100%  20.0 msg/s  ETA 0ms"
 * ```
 * @since 0.1.0
 */
export const plainLine = (state: State): string => `${state.label}: ${stats(state)}`

/**
 * Reports progress on stderr: on a terminal the bar redrawn in place (at most every 100 ms), otherwise a
 * plain line at most every second (none with `plain: false`); `finish` draws the final state.
 *
 * @since 0.1.0
 */
export interface Reporter {
  readonly update: (done: number, total: number, note?: string) => Effect.Effect<void>
  readonly finish: (done: number, total: number, note?: string) => Effect.Effect<void>
}

const write = (text: string) => Effect.sync(() => void process.stderr.write(text))

/**
 * A {@link Reporter} for a command (`label`), on a terminal when stderr is one.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ProgressBar } from "@switchyard/cli"
 * const program = Effect.gen(function*() {
 *   const progress = yield* ProgressBar.reporter("publish", { tty: false })
 *   yield* progress.update(1, 2)
 *   yield* progress.finish(2, 2)
 * })
 * ```
 * @since 0.1.0
 */
export const reporter = Effect.fn("ProgressBar.reporter")(function*(
  label: string,
  options: { readonly tty?: boolean | undefined; readonly plain?: boolean | undefined } = {}
) {
  const tty = options.tty ?? process.stderr.isTTY === true
  if (!tty && options.plain === false) {
    return { update: () => Effect.void, finish: () => Effect.void } satisfies Reporter
  }
  const started = yield* Clock.currentTimeMillis
  /** When the last line was drawn, and what it showed. */
  const lastDrawn = yield* Ref.make({ at: Number.NEGATIVE_INFINITY, shown: "" })
  const interval = tty ? 100 : 1000
  const draw = (done: number, total: number, now: number, note: string | undefined) => {
    const state: State = { label, done, total, elapsedMillis: now - started, note }
    return tty
      ? write(`\r${render(state, process.stderr.columns ?? 80)}\x1b[K`)
      : write(`${plainLine(state)}\n`)
  }
  const update = (done: number, total: number, note?: string) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const shown = `${done}/${total} ${note ?? ""}`
      const due = yield* Ref.modify(lastDrawn, (last) =>
        now - last.at >= interval && shown !== last.shown ? [true, { at: now, shown }] : [false, last])
      if (due) yield* draw(done, total, now, note)
    })
  const finish = (done: number, total: number, note?: string) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const shown = `${done}/${total} ${note ?? ""}`
      const last = yield* Ref.getAndSet(lastDrawn, { at: now, shown })
      // a plain line already showing the final state is not printed twice
      if (tty || last.shown !== shown) yield* draw(done, total, now, note)
      if (tty) yield* write("\n")
    })
  return { update, finish } satisfies Reporter
})
