/**
 * Test helpers for `@switchyard/redis`: a private redis-server (AOF on) for restart tests.
 *
 * @since 0.1.0
 */
export * as RedisServer from "./RedisServer.ts"
