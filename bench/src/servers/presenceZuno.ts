/**
 * Zuno's node:http handler for the presence suite: no store is written; every room (any store key)
 * may be joined. Presence as a server ships it: `presence.tickMs` 5, the default rate limits of
 * `POST /presence` (100 a second per stream; a replica sends at most 100).
 */
import { createServer } from 'node:http'
import { createNodeHandler, createUniverse } from 'zuno/server'
import { report } from '../harness/channel'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

const universe = createUniverse({ allowStore: () => true, maxStores: 1_000_000 })
const handler = createNodeHandler(universe, BENCH_SERVER_OPTIONS)
const server = createServer({ keepAliveTimeout: 120_000 }, handler)
server.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
process.on('SIGTERM', () => {
  handler.close()
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
