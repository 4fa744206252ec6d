/**
 * Zuno on Express, as an app mounts it. Every store is open to clients. With `--data <dir>` the
 * universe keeps its log in files (the reconnect storm restarts it); with `--redis <namespace>` it
 * shares a Redis namespace with the other instances started so (the hot store's two instances);
 * `emit` writes `feed`.
 */
import express from 'express'
import { createFileStorage } from 'zuno/file'
import { createUniverse } from 'zuno/server'
import { zuno } from 'zuno-express'
import { createRedisStorage } from 'zuno-redis'
import { monotonicMs, report } from '../harness/channel'
import { serveCommands } from './serverCommands'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

const args = process.argv.slice(2)
const option = (name: string) => {
  const index = args.indexOf(name)
  return index >= 0 ? args[index + 1] : undefined
}
const dataDir = option('--data')
const redisNamespace = option('--redis')
const port = Number(option('--port') ?? 0)

const universe = createUniverse({
  allowStore: () => true,
  maxStores: 1_000_000,
  // The hot-store suite's writers increment through this as well as through `set`.
  actions: {
    increment: (tx, args) => {
      const { key } = args as { key: string }
      tx.set(key, (n: unknown) => ((n as number | undefined) ?? 0) + 1)
    },
  },
  ...(dataDir === undefined ? {} : { storage: createFileStorage({ dir: dataDir, fsync: 'never' }) }),
  ...(redisNamespace === undefined ? {} : { storage: createRedisStorage({ namespace: redisNamespace }) }),
})
const feed = universe.store<{ seq: number; t: number }>('feed')
serveCommands((seq, t) => feed.set({ seq, t }))

const middleware = zuno(universe, BENCH_SERVER_OPTIONS)
const app = express().use('/zuno', middleware)
const server = app.listen(port, '127.0.0.1', () => {
  universe.ready.then(() => report({ type: 'ready', port: (server.address() as { port: number }).port, at: monotonicMs() }))
})
process.on('SIGTERM', () => {
  middleware.close()
  server.close(() => process.exit(0))
})
