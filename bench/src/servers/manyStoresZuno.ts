/**
 * Zuno on node:http over a storage holding many documents (`doc:0` … `doc:N-1`), for the
 * many-stores suite: it reports how long the universe took to start and what it holds, then obeys
 * `touch` (read random documents into memory, as requests would), `emit` (write documents, each
 * stamped with its event number and commit time) and `mem`.
 * `--storage redis --redis <namespace>`, or `--storage file` or `sqlite` with `--dir <dir>`; `--hot <n>` sets `hotStores`.
 */
import { createServer } from 'node:http'
import { createNodeHandler, createUniverse } from 'zuno/server'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { seededRandom } from '../harness/random'
import { openStorage, type StorageKind } from './manyStoresStorage'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

const args = process.argv.slice(2)
const option = (name: string) => {
  const index = args.indexOf(name)
  return index >= 0 ? args[index + 1] : undefined
}

const began = monotonicMs()
const storage = openStorage(option('--storage') as StorageKind, { dir: option('--dir'), namespace: option('--redis') })
const universe = createUniverse({
  allowStore: () => true,
  maxStores: 100_000_000,
  hotStores: Number(option('--hot') ?? 10_000),
  storage,
  actions: {
    stamp: (tx, args) => {
      const { key, seq, t } = args as { key: string; seq: number; t: number }
      tx.set(key, { seq, t })
    },
  },
})
await universe.ready
const startMs = monotonicMs() - began
const handler = createNodeHandler(universe, BENCH_SERVER_OPTIONS)
const server = createServer(handler)
server.listen(0, '127.0.0.1', () => {
  report({ type: 'ready', port: (server.address() as { port: number }).port, startMs, processMs: process.uptime() * 1000, inMemory: universe.keys().length })
})

onCommand(async (command) => {
  if (command.type === 'touch') {
    const next = seededRandom(command.seed as number)
    const of = command.of as number
    const started = monotonicMs()
    for (let done = 0; done < (command.count as number); done += 500) {
      await universe.load(Array.from({ length: 500 }, () => `doc:${Math.floor(next() * of)}`))
    }
    report({ type: 'touched', ms: monotonicMs() - started, inMemory: universe.keys().length })
  } else if (command.type === 'emit') {
    const keys = command.keys as string[]
    const first = command.first as number
    const intervalMs = command.intervalMs as number
    for (let i = 0; i < keys.length; i++) {
      await universe.act('stamp', { key: keys[i], seq: first + i, t: monotonicMs() })
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
    report({ type: 'emitted' })
  } else if (command.type === 'mem') {
    const gc = (globalThis as { gc?: () => void }).gc
    for (let i = 0; i < 3; i++) {
      gc?.()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    report({ type: 'mem', rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed })
  }
})
// Closed at once, open streams and all: the next run starts on the same folder, whose lock must be free.
process.on('SIGTERM', () => {
  handler.close()
  server.close()
  server.closeAllConnections()
  // The storage too: closing it releases the folder's lock (a universe leaves its storage open).
  universe
    .close()
    .then(() => storage.close())
    .then(() => process.exit(0))
})
