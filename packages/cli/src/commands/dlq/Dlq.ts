/**
 * `switchyard dlq list|show|redrive|purge`: dead-letter operations, on core's `DeadLetters`.
 *
 * @since 0.1.0
 */
import { Command } from "effect/cli"
import * as List from "./List.ts"
import * as Purge from "./Purge.ts"
import * as Redrive from "./Redrive.ts"
import * as Show from "./Show.ts"

/**
 * The `dlq` command and its subcommands.
 *
 * @since 0.1.0
 */
export const command = Command.make("dlq").pipe(
  Command.withDescription("Dead letters: list, show, redrive and purge the dead letters of a topic (<topic>.dlq)"),
  Command.withSubcommands([List.command, Show.command, Redrive.command, Purge.command])
)
