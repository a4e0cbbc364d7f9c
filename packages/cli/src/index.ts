/**
 * `@switchyard/cli`: the `switchyard` ops CLI (tail, publish, dead letters, lag, health) on every Switchyard
 * broker, and its parts as modules (the command tree, broker selection, progress bar, output helpers).
 *
 * @since 0.1.0
 */
export * as BrokerSelection from "./BrokerSelection.ts"
export * as Cli from "./Cli.ts"
export * as DlqJson from "./commands/dlq/Json.ts"
export * as DlqList from "./commands/dlq/List.ts"
export * as DlqPurge from "./commands/dlq/Purge.ts"
export * as DlqRedrive from "./commands/dlq/Redrive.ts"
export * as DlqShow from "./commands/dlq/Show.ts"
export * as Filters from "./commands/dlq/Filters.ts"
export * as Health from "./commands/Health.ts"
export * as Publish from "./commands/Publish.ts"
export * as Failure from "./Failure.ts"
export * as Output from "./Output.ts"
export * as ProgressBar from "./ProgressBar.ts"
export * as Topics from "./Topics.ts"
