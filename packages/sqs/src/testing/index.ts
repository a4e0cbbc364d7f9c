/**
 * Test helpers for `@switchyard/sqs`: a real SQS server (ElasticMQ from Maven Central).
 *
 * @since 0.1.0
 */
export * as ElasticMQ from "./ElasticMQ.ts"
