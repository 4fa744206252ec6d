import { createServer, type Server } from 'node:http'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { createFileStorage } from 'zuno/file'
import { createNodeHandler, createUniverse, type ServedUniverse, type UniverseOptions } from 'zuno/server'
import { freshDir, removeDirs } from './support/fileUniverse'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeDirs()
})

/** A schema that stores names trimmed and upper-cased: what the server stores is not what was sent. */
const shouted: StandardSchemaV1<unknown, string> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: (value) => (typeof value === 'string' ? { value: value.trim().toUpperCase() } : { issues: [{ message: 'a string' }] }),
  },
}

/** Serves `universe` with core's node:http handler on 127.0.0.1 (on `port`, when given); closed after the test. */
async function serve(universe: ServedUniverse, port = 0): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  const handler = createNodeHandler(universe)
  const server: Server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const bound = (server.address() as { port: number }).port
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    handler.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  cleanups.push(stop)
  return { url: `http://127.0.0.1:${bound}/zuno`, port: bound, stop }
}

/** A Node replica of `url`, closed after the test. */
function replicaOf(url: string) {
  const replica = connect({ url, EventSource, tabs: false })
  cleanups.push(() => replica.close())
  return replica
}

describe('the server answer is the truth', () => {
  it('shows the writer the state the schema made of its op, as every other replica sees it', async () => {
    const universe = createUniverse({ stores: { name: '' }, schemas: { name: shouted } })
    cleanups.push(() => universe.close())
    const { url } = await serve(universe)
    const writer = replicaOf(url)
    const reader = replicaOf(url)
    const mine = writer.store<string>('name', '')
    const theirs = reader.store<string>('name', '')
    await until(() => writer.status.get() === 'connected' && reader.status.get() === 'connected')

    const version = await mine.set('  bob ')

    expect(version).toBe(1)
    expect(universe.store('name').get()).toBe('BOB')
    await until(() => theirs.version === 1)
    expect(theirs.get()).toBe('BOB')
    expect({ version: mine.version, state: mine.get() }).toEqual({ version: 1, state: 'BOB' })
  })
})

describe('a new epoch', () => {
  it('resets a store the replica created itself and re-proposes its pending op on the new base', async () => {
    const options = (dir: string): UniverseOptions => ({
      stores: { counter: 0 },
      allowStore: () => true,
      storage: createFileStorage({ dir }),
    })
    const first = createUniverse(options(freshDir()))
    await first.ready
    const before = await serve(first)
    const replica = replicaOf(before.url)
    const notes = replica.store<number>('notes', 100)
    await until(() => replica.status.get() === 'connected')
    for (let i = 0; i < 3; i++) await notes.set((n) => n + 1)
    expect({ version: notes.version, state: notes.get() }).toEqual({ version: 3, state: 103 })

    // The server restarts on a fresh, empty folder: a new history, in which `notes` never existed.
    await before.stop()
    await first.close()
    await until(() => replica.status.get() !== 'connected')
    const pending = notes.set((n) => n + 10)
    const second = createUniverse(options(freshDir()))
    await second.ready
    cleanups.push(() => second.close())
    await serve(second, before.port)

    // The op is recomputed on the new epoch's base (the store's initial state), not on version 3.
    expect(await pending).toBe(1)
    expect(second.store('notes').get()).toBe(110)
    expect({ version: notes.version, state: notes.get() }).toEqual({ version: 1, state: 110 })
    // And later writes go through as usual.
    expect(await notes.set((n) => n + 1)).toBe(2)
    expect(second.store('notes').get()).toBe(111)
  })
})
