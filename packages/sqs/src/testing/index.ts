/**
 * Test helpers for `@switchyard/sqs`.
 *
 * @since 0.1.0
 */
export {}
