import { fileURLToPath } from 'node:url'
import { createFileStorage } from 'zuno/file'
import type { Storage } from 'zuno/server'
import { createRedisStorage } from 'zuno-redis'
import { startDemo } from './demoServer'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

// Durable by default: a file log in ZUNO_DATA_DIR; with ZUNO_REDIS_URL, Redis (many instances).
const redisUrl = process.env.ZUNO_REDIS_URL
const dataDir = process.env.ZUNO_DATA_DIR ?? fileURLToPath(new URL('../.data', import.meta.url))
const storage: Storage = redisUrl ? createRedisStorage({ url: redisUrl, namespace: 'zuno-demo' }) : createFileStorage({ dir: dataDir })

const demo = await startDemo(port, host, storage)
console.log(`Zuno demo on ${demo.url} (${redisUrl ? `Redis at ${redisUrl}` : `data in ${dataDir}`}; open it in two tabs and click)`)

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
