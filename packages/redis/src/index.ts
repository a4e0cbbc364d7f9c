/**
 * `@switchyard/redis`: the Redis Streams (node-redis) adapter of Switchyard.
 *
 * @since 0.1.0
 */
export {}
