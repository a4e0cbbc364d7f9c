/**
 * Test helpers for `@switchyard/redis`.
 *
 * @since 0.1.0
 */
export {}
