import { fileURLToPath } from 'node:url'
import { createRedisStorage } from 'zuno-redis'
import { startDemo } from './demoServer'
import { embeddedStorage } from './storage'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

// Durable by default: SQLite in ZUNO_DATA_DIR (see ./storage); with ZUNO_REDIS_URL, Redis (many instances).
const redisUrl = process.env.ZUNO_REDIS_URL
const dataDir = process.env.ZUNO_DATA_DIR ?? fileURLToPath(new URL('../.data', import.meta.url))
const { storage, description } = redisUrl
  ? { storage: createRedisStorage({ url: redisUrl, namespace: 'zuno-demo' }), description: `Redis at ${redisUrl}` }
  : await embeddedStorage(dataDir)

const demo = await startDemo(port, host, storage)
console.log(`Zuno demo on ${demo.url} (${description}; open it in two tabs and click)`)

// Graceful: proposals in flight finish, new requests get 503 JSON, then the server, the universe
// and the storage close, in that order.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    demo.shutdown(Number(process.env.ZUNO_DRAIN_MS ?? 500)).then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('[demo] shutdown failed', error)
        process.exit(1)
      },
    )
  })
}
