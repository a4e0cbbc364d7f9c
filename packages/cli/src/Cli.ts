/**
 * The `switchyard` command tree and its runner: typed errors become one line on stderr and an exit code
 * (see `Failure`), parse errors print the help with the problem (exit code 2).
 *
 * @since 0.1.0
 */
import { Cause, Console, Effect, Exit, Runtime } from "effect"
import { CliError, Command } from "effect/cli"
import * as BrokerSelection from "./BrokerSelection.ts"
import * as Dlq from "./commands/dlq/Dlq.ts"
import * as Health from "./commands/Health.ts"
import * as Lag from "./commands/Lag.ts"
import * as Publish from "./commands/Publish.ts"
import * as Tail from "./commands/Tail.ts"
import * as Failure from "./Failure.ts"

/**
 * The CLI's version (the package's).
 *
 * @since 0.1.0
 */
export const version = "0.1.0"

/**
 * The root command, `switchyard`, with the global `--broker` flag.
 *
 * @since 0.1.0
 */
export const command = Command.make("switchyard").pipe(
  Command.withDescription(
    "Operate Switchyard topics on any broker: tail, publish, dead letters (list, show, redrive, purge), lag, health"
  ),
  Command.withSubcommands([Tail.command, Publish.command, Dlq.command, Lag.command, Health.command]),
  Command.withGlobalFlags([BrokerSelection.BrokerFlag])
)

/**
 * Reports an error of a command: a CLI parse error was already printed with the help (exit code 2, or 0 for
 * the help shown without an error); any other error is printed on one line on stderr and fails as a
 * `CliFailure` with its exit code.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cli } from "@switchyard/cli"
 * const program = Effect.fail(new Error("boom")).pipe(Effect.catch(Cli.report))
 * ```
 * @since 0.1.0
 */
export const report = (error: unknown): Effect.Effect<void, Failure.CliFailure> => {
  if (CliError.isCliError(error)) {
    return error._tag === "ShowHelp" && error.errors.length === 0
      ? Effect.void
      : Effect.fail(new Failure.CliFailure({ message: error.message, exitCode: Failure.ExitCode.usage }))
  }
  const failure = Failure.fromError(error)
  return Console.error(`switchyard: ${failure.message}`).pipe(Effect.andThen(Effect.fail(failure)))
}

/**
 * Runs the CLI on the given arguments (without `node` and the script).
 *
 * @example
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@switchyard/cli"
 * const program = Cli.run(["--broker", "memory", "health"]).pipe(Effect.provide(NodeServices.layer))
 * ```
 * @since 0.1.0
 */
export const run = (args: ReadonlyArray<string>) =>
  Command.runWith(command, { version })(args).pipe(Effect.catch(report))

/**
 * The command an argument list runs (`tail`, `dlq`, …): the first argument that is neither a flag nor the
 * value of `--broker`.
 *
 * @example
 * ```ts
 * import { Cli } from "@switchyard/cli"
 * Cli.commandOf(["--broker", "amqp", "tail", "orders"]) // "tail"
 * ```
 * @since 0.1.0
 */
export const commandOf = (args: ReadonlyArray<string>): string | undefined =>
  args.find((arg, i) => !arg.startsWith("-") && args[i - 1] !== "--broker")

/**
 * The process exit code of the CLI's end: `Failure`'s codes; an interruption (Ctrl-C, SIGTERM) is 130,
 * except for `tail`, whose normal end it is (0).
 *
 * @example
 * ```ts
 * import { NodeRuntime, NodeServices } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@switchyard/cli"
 * const args = process.argv.slice(2)
 * NodeRuntime.runMain(Cli.run(args).pipe(Effect.provide(NodeServices.layer)), { teardown: Cli.teardown(args) })
 * ```
 * @since 0.1.0
 */
export const teardown = (args: ReadonlyArray<string>): Runtime.Teardown => (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
    ? onExit(commandOf(args) === "tail" ? Failure.ExitCode.ok : Failure.ExitCode.interrupted)
    : Runtime.defaultTeardown(exit, onExit)
