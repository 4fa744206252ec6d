/**
 * `zuno-redis`: A Redis storage, so that several server instances share one authoritative history.
 *
 * @module zuno-redis
 */
export { createRedisStorage } from './redisStorage'
export type { RedisStorageOptions } from './redisStorage'
