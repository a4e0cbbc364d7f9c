/**
 * `@switchyard/redis`: the Redis Streams (node-redis) adapter of Switchyard.
 *
 * @since 0.1.0
 */
export * as RedisBroker from "./RedisBroker.ts"
export * as RedisConnection from "./RedisConnection.ts"
export * as RedisKeyValueStore from "./RedisKeyValueStore.ts"
export * as RedisTopology from "./RedisTopology.ts"
