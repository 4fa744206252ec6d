/** Zuno's fetch handler straight on `Bun.serve`, with no framework: shows what Elysia itself adds. */
import { createFetchHandler, createUniverse } from 'zuno/server'
import { report } from '../harness/channel'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

declare const Bun: {
  serve(options: { port: number; hostname: string; fetch(request: Request): Response | Promise<Response> }): { port: number }
}

const universe = createUniverse({ allowStore: () => true, maxStores: 1_000_000 })
const handler = createFetchHandler(universe, BENCH_SERVER_OPTIONS)
const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: handler })
report({ type: 'ready', port: server.port })
