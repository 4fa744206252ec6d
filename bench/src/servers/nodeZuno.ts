/** Zuno's node:http handler on a bare `http.Server`, no framework: every store open to clients; `emit` writes `feed`. */
import { createServer } from 'node:http'
import { createNodeHandler, createUniverse } from 'zuno/server'
import { report } from '../harness/channel'
import { serveCommands } from './serverCommands'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

const universe = createUniverse({ allowStore: () => true, maxStores: 1_000_000 })
const feed = universe.store<{ seq: number; t: number }>('feed')
serveCommands((seq, t) => feed.set({ seq, t }))

const handler = createNodeHandler(universe, BENCH_SERVER_OPTIONS)
const server = createServer(handler)
server.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
process.on('SIGTERM', () => {
  handler.close()
  server.close(() => process.exit(0))
})
