/**
 * What the CLI does with an error: one line on stderr (no stack) and a documented exit code.
 *
 * | code | meaning |
 * | --- | --- |
 * | 0 | success (also `tail` stopped with Ctrl-C / SIGINT) |
 * | 1 | the broker failed: cannot connect, a publish was not confirmed, a read failed |
 * | 2 | usage: an unknown command or flag, a bad value, an invalid input line |
 * | 3 | the broker cannot tell or do this (`lag` on core NATS, dead letters on a broker that keeps none) |
 * | 4 | not found (`dlq show` of an id that is not there) |
 * | 130 | interrupted (Ctrl-C / SIGINT, SIGTERM) |
 *
 * @since 0.1.0
 */
import { Runtime, Schema } from "effect"

/**
 * The exit codes (see the module's table).
 *
 * @since 0.1.0
 */
export const ExitCode = {
  ok: 0,
  broker: 1,
  usage: 2,
  unsupported: 3,
  notFound: 4,
  interrupted: 130
} as const

/**
 * A failure the CLI reports: `message` is the one line printed on stderr, `exitCode` the process exit code.
 *
 * @since 0.1.0
 */
export class CliFailure extends Schema.TaggedError<CliFailure>()("CliFailure", {
  message: Schema.String,
  exitCode: Schema.Number
}) {
  /** Read by `NodeRuntime.runMain`'s teardown. */
  override get [Runtime.errorExitCode](): number {
    return this.exitCode
  }
  /** Already printed on stderr: `runMain` does not log it again. */
  override get [Runtime.errorReported](): boolean {
    return false
  }
}

/**
 * A failure: the broker cannot tell or do what was asked (exit code 3).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Failure } from "@switchyard/cli"
 * const lag = Effect.fail(Failure.unsupported("core NATS keeps no consumer positions: lag is unknown"))
 * ```
 * @since 0.1.0
 */
export const unsupported = (message: string): CliFailure => new CliFailure({ message, exitCode: ExitCode.unsupported })

/**
 * A failure: bad input (exit code 2).
 *
 * @example
 * ```ts
 * import { Failure } from "@switchyard/cli"
 * const failure = Failure.usage("line 3 is not valid JSON")
 * ```
 * @since 0.1.0
 */
export const usage = (message: string): CliFailure => new CliFailure({ message, exitCode: ExitCode.usage })

/**
 * A failure: nothing matched (exit code 4).
 *
 * @example
 * ```ts
 * import { Failure } from "@switchyard/cli"
 * const failure = Failure.notFound(`no dead letter with id "o-1" in orders.dlq`)
 * ```
 * @since 0.1.0
 */
export const notFound = (message: string): CliFailure => new CliFailure({ message, exitCode: ExitCode.notFound })

const hasTag = (u: unknown): u is { readonly _tag: string; readonly message: string } =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" && "message" in u &&
  typeof u.message === "string"

/**
 * Turns any error the CLI's commands fail with into a {@link CliFailure}: a `CliFailure` stays as it is; a
 * Switchyard error (`ConnectionError`, `PublishError`, `SubscribeError`, …) becomes exit code 1 with its
 * message (its reason); a configuration error is a usage error.
 *
 * @example
 * ```ts
 * import { Errors } from "@switchyard/core"
 * import { Failure } from "@switchyard/cli"
 * const failure = Failure.fromError(new Errors.ConnectionError({ broker: "rabbitmq", reason: Errors.reason("Unreachable", "connect ECONNREFUSED 127.0.0.1:5672", "ECONNREFUSED") }))
 * // failure.exitCode === 1, failure.message === "connection to rabbitmq failed: connect ECONNREFUSED 127.0.0.1:5672"
 * ```
 * @since 0.1.0
 */
export const fromError = (error: unknown): CliFailure => {
  if (error instanceof CliFailure) return error
  if (hasTag(error)) {
    const code = error._tag === "ConfigError" ? ExitCode.usage : ExitCode.broker
    return new CliFailure({ message: oneLine(error.message || error._tag), exitCode: code })
  }
  return new CliFailure({ message: oneLine(String(error)), exitCode: ExitCode.broker })
}

/**
 * A message on one line: its lines trimmed and joined (errors are printed on one line).
 *
 * @example
 * ```ts
 * import { Failure } from "@switchyard/cli"
 * Failure.oneLine("Expected a number\n  at [\"AMQP_PORT\"]") // 'Expected a number at ["AMQP_PORT"]'
 * ```
 * @since 0.1.0
 */
export const oneLine = (message: string): string =>
  message.split("\n").map((line) => line.trim()).filter((line) => line.length > 0).join(" ")
