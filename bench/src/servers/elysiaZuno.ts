/** Zuno on Bun: the zuno-elysia plugin, every store open to clients, no rate limit in the way. */
import { Elysia } from 'elysia'
import { createUniverse } from 'zuno/server'
import { zuno } from 'zuno-elysia'
import { report } from '../harness/channel'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

const universe = createUniverse({ allowStore: () => true, maxStores: 1_000_000 })
const app = new Elysia().use(zuno(universe, BENCH_SERVER_OPTIONS)).listen({ port: 0, hostname: '127.0.0.1' })
report({ type: 'ready', port: app.server?.port })
