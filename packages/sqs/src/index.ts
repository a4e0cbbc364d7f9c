/**
 * `@switchyard/sqs`: the Amazon SQS (AWS SDK v3) adapter of Switchyard.
 *
 * @since 0.1.0
 */
export * as SqsBroker from "./SqsBroker.ts"
export * as SqsConnection from "./SqsConnection.ts"
export * as SqsTopology from "./SqsTopology.ts"
