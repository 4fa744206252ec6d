import { fileURLToPath } from 'node:url'
import { createRedisStorage } from 'zuno-redis'
import { startDemo } from './demoServer'
import { embeddedStorage, storageChoice } from './storage'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

// Durable by default: SQLite in ZUNO_DATA_DIR (see ./storage); with ZUNO_REDIS_URL, Redis (many instances).
const redisUrl = process.env.ZUNO_REDIS_URL
const dataDir = process.env.ZUNO_DATA_DIR ?? fileURLToPath(new URL('../.data', import.meta.url))

/** Chooses the storage and serves; a setting or a folder it cannot use ends the process with one line saying why. */
async function start() {
  try {
    if (redisUrl && storageChoice(process.env.ZUNO_STORAGE) !== undefined) throw new Error('set ZUNO_REDIS_URL or ZUNO_STORAGE, not both')
    const { storage, description } = redisUrl
      ? { storage: createRedisStorage({ url: redisUrl, namespace: 'zuno-demo' }), description: `Redis at ${redisUrl}` }
      : await embeddedStorage(dataDir)
    const demo = await startDemo(port, host, storage)
    console.log(`Zuno demo on ${demo.url} (${description}; open it in two tabs and click)`)
    return demo
  } catch (error) {
    console.error(`[demo] could not start: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
}

const demo = await start()

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
