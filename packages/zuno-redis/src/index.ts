export { createRedisStorage } from './redisStorage'
export type { RedisStorageOptions } from './redisStorage'
