/**
 * Zuno on Express serving the large-store suite's app (a 10,000-item todo list and a counter),
 * every store open to clients. It notes when each version of a store is committed (when the
 * universe shows it, just before the streams are written to) and answers `stamps` with those times.
 */
import express from 'express'
import { createUniverse } from 'zuno/server'
import { zuno } from 'zuno-express'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { todoApp } from '../load/todoApp'
import { BENCH_SERVER_OPTIONS } from './zunoOptions'

const universe = createUniverse({ app: todoApp })

/** Per store: when each version was committed, monotonic ms, by version. */
const committedAt = new Map<string, number[]>()
for (const key of ['todos', 'counter'] as const) {
  const store = universe.store(key)
  const times: number[] = []
  committedAt.set(key, times)
  store.subscribe(() => {
    times[store.version] = monotonicMs()
  })
}

onCommand((command) => {
  if (command.type !== 'stamps') return
  const times = committedAt.get(command.store as string) ?? []
  const versions = command.versions as number[]
  report({ type: 'stamps', at: versions.map((version) => times[version] ?? null) })
})

const middleware = zuno(universe, BENCH_SERVER_OPTIONS)
const app = express().use('/zuno', middleware)
const server = app.listen(0, '127.0.0.1', () => {
  universe.ready.then(() => report({ type: 'ready', port: (server.address() as { port: number }).port }))
})
process.on('SIGTERM', () => {
  middleware.close()
  server.close(() => process.exit(0))
})
