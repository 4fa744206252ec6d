/**
 * Stores read lazily: on a storage that has `read`, the universe holds only the stores in use and
 * the `hotStores` most recently used, reads the others when next needed (a proposal, an action, a
 * stream's snapshot, a follow, `GET /state`), and never shows one older than its own position. The
 * memory storage's `lazy` mode is the storage here; bounds at their smallest (`hotStores: 0`/`1`).
 */
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect } from '../src/index'
import { newClientId } from '../src/id'
import { createMemoryStorage, createUniverse, type Storage, type UniverseOptions } from '../src/server/index'
import { epochOf, rawProposal } from './support/rawProposal'
import { openRawStream } from './support/sseReader'
import { until } from './support/until'
import { serveUniverse } from './support/zunoBehindProxy'
import { lazyServer as serveLazy, propose } from './support/lazyServer'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const lazyServer = (options: Partial<UniverseOptions> = {}, storage?: Storage) => serveLazy(cleanups, options, storage)

/** Writes `doc:0` … `doc:{count-1}` over HTTP, each to `{ n: i }` at version 1. */
async function writeDocs(url: string, count: number) {
  const epoch = await epochOf(url)
  const clientId = newClientId()
  for (let i = 0; i < count; i++) {
    const answer = await propose(url, rawProposal(epoch, { storeKey: `doc:${i}`, baseVersion: 0, state: { n: i }, clientId, opId: i + 1 }))
    expect(answer.status).toBe(200)
  }
  return { epoch, clientId }
}

describe('a universe on a storage read lazily', () => {
  it('keeps only the hot set in memory, and reads an evicted store again for a proposal, a snapshot and a conflict', async () => {
    const { universe, url } = await lazyServer({ hotStores: 2 })
    const { epoch, clientId } = await writeDocs(url, 20)
    // `counter` is declared (always held), then the two most recently used.
    expect(universe.keys().sort()).toEqual(['counter', 'doc:18', 'doc:19'])
    // GET /state of evicted stores: read again, at their versions.
    const state = (await (await fetch(`${url}/state?stores=doc:3,doc:7,doc:nothing`)).json()) as { stores: Record<string, unknown> }
    expect(state.stores).toEqual({ 'doc:3': { version: 1, state: { n: 3 } }, 'doc:7': { version: 1, state: { n: 7 } } })
    // A proposal on an evicted store's current version lands; one on a stale version gets the truth.
    expect((await propose(url, rawProposal(epoch, { storeKey: 'doc:5', baseVersion: 1, state: { n: 50 }, clientId, opId: 21 }))).body).toMatchObject({ version: 2 })
    for (let i = 10; i < 14; i++) await universe.load([`doc:${i}`])
    const stale = await propose(url, rawProposal(epoch, { storeKey: 'doc:5', baseVersion: 1, state: { n: 51 }, clientId, opId: 22 }))
    expect(stale.status).toBe(409)
    expect(stale.body).toMatchObject({ version: 2, state: { n: 50 } })
    expect(universe.keys().length).toBeLessThanOrEqual(3)
  })

  it('opens a stream of evicted stores with their states, and a stream of every store with all of them, read whole', async () => {
    const { universe, url } = await lazyServer({ hotStores: 1 })
    await writeDocs(url, 12)
    await universe.delete('doc:4')
    const named = await openRawStream(`${url}/sse?stores=doc:1,doc:4,doc:9`)
    cleanups.push(() => named.close())
    const snapshot = JSON.parse((await named.nextEvent()).data as string) as { stores: Record<string, unknown> }
    expect(snapshot.stores).toEqual({ 'doc:1': { version: 1, state: { n: 1 } }, 'doc:4': { version: 2, deleted: true }, 'doc:9': { version: 1, state: { n: 9 } } })
    const every = await openRawStream(`${url}/sse`)
    cleanups.push(() => every.close())
    const all = JSON.parse((await every.nextEvent()).data as string) as { stores: Record<string, { version: number }> }
    expect(Object.keys(all.stores).sort()).toEqual(['counter', ...Array.from({ length: 12 }, (_, i) => `doc:${i}`)].sort())
    expect(all.stores['doc:4']).toEqual({ version: 2, deleted: true })
    expect(all.stores.counter).toEqual({ version: 0, state: 0 })
    // Read whole for the stream, not kept: memory still holds the declared store and one more.
    expect(universe.keys().length).toBeLessThanOrEqual(2)
  })

  it('brings a store read before a commit on to the commit: a read is never shown older than the instance', async () => {
    const inner = createMemoryStorage({ lazy: true })
    let holdReads: Promise<void> | undefined
    const storage: Storage = {
      ...inner,
      // Reads now, answers later: the commit made meanwhile is in the instance's log, not in the read.
      read: async (keys) => {
        const read = await (inner.read as NonNullable<Storage['read']>)(keys)
        await holdReads
        return read
      },
    }
    const { universe, url } = await lazyServer({ hotStores: 1 }, storage)
    const { epoch, clientId } = await writeDocs(url, 2)
    let open = () => {}
    holdReads = new Promise((resolve) => (open = resolve))
    const loading = universe.load(['doc:0'])
    await until(() => true)
    // Another writer's commit, straight to the storage, while the read is in flight.
    const other = inner.commit({ principal: '', clientId: newClientId(), opId: 1, digest: 'x', epoch, write: { storeKey: 'doc:0', baseVersion: 1, state: { n: 'late' } } })
    expect(other).toMatchObject({ type: 'accepted' })
    open()
    await loading
    const seen = universe.snapshot(['doc:0']).stores['doc:0']
    expect(seen).toEqual({ version: 2, state: { n: 'late' } })
    holdReads = undefined
    expect((await propose(url, rawProposal(epoch, { storeKey: 'doc:0', baseVersion: 2, state: { n: 3 }, clientId, opId: 3 }))).body).toMatchObject({ version: 3 })
  })

  it('waits, for a read ahead of this instance (another instance wrote), until the instance has applied it', async () => {
    const inner = createMemoryStorage({ lazy: true })
    // Events reach this instance only when let through, as a Redis follow that lags.
    let held: Array<() => void> | undefined
    const storage: Storage = {
      ...inner,
      onCommit: (listener) =>
        inner.onCommit((event) => {
          if (held === undefined) listener(event)
          else held.push(() => listener(event))
        }),
    }
    const { universe, url } = await lazyServer({ hotStores: 1 }, storage)
    const { epoch } = await writeDocs(url, 2)
    held = []
    const other = inner.commit({ principal: '', clientId: newClientId(), opId: 1, digest: 'x', epoch, write: { storeKey: 'doc:0', baseVersion: 1, state: { n: 'other' } } })
    expect(other).toMatchObject({ type: 'accepted' })
    let loaded = false
    const loading = universe.load(['doc:0']).then(() => (loaded = true))
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The storage is at the other instance's write; this instance is not: nothing is shown yet.
    expect(loaded).toBe(false)
    for (const deliver of held.splice(0)) deliver()
    held = undefined
    await loading
    expect(universe.snapshot(['doc:0']).stores['doc:0']).toEqual({ version: 2, state: { n: 'other' } })
  })

  it('refuses a snapshot of every store past 10,000 stores (400 too_many_stores), and serves named ones', async () => {
    const storage = createMemoryStorage({ lazy: true })
    const { epoch } = await storage.load()
    const clientId = newClientId()
    for (let i = 0; i < 9_999; i++) storage.commit({ principal: '', clientId, opId: i + 1, digest: `d${i}`, epoch, write: { storeKey: `doc:${i}`, baseVersion: 0, state: i } })
    // With the declared `counter`, 10,000 stores: at the bound, still served.
    const { url } = await lazyServer({ hotStores: 0 }, storage)
    expect((await fetch(`${url}/state`)).status).toBe(200)
    storage.commit({ principal: '', clientId, opId: 10_000, digest: 'last', epoch, write: { storeKey: 'doc:last', baseVersion: 0, state: 1 } })
    const refused = await fetch(`${url}/state`)
    expect(refused.status).toBe(400)
    expect(JSON.stringify(await refused.json())).toContain('too_many_stores')
    const stream = await fetch(`${url}/sse`)
    expect(stream.status).toBe(400)
    await stream.body?.cancel()
    expect((await (await fetch(`${url}/state?stores=doc:last`)).json()) as unknown).toMatchObject({ stores: { 'doc:last': { version: 1, state: 1 } } })
  })

  it('counts the stores that exist from the storage, not from memory: maxStores holds with none of them in memory', async () => {
    const { universe, url } = await lazyServer({ hotStores: 0, maxStores: 4 })
    // The declared `counter` and three more make four.
    const { epoch, clientId } = await writeDocs(url, 3)
    const refused = await propose(url, rawProposal(epoch, { storeKey: 'doc:3', baseVersion: 0, state: { n: 3 }, clientId, opId: 4 }))
    expect(refused.status).toBe(403)
    expect(JSON.stringify(refused.body)).toContain('store_limit')
    // Writing one that exists is no creation; deleting one makes room.
    expect((await propose(url, rawProposal(epoch, { storeKey: 'doc:1', baseVersion: 1, state: { n: 10 }, clientId, opId: 5 }))).status).toBe(200)
    await universe.delete('doc:0')
    expect((await propose(url, rawProposal(epoch, { storeKey: 'doc:3', baseVersion: 0, state: { n: 3 }, clientId, opId: 6 }))).status).toBe(200)
    expect(universe.keys()).toEqual(['counter'])
  })

  it('runs an action over stores it must read first, and keeps a store server code holds', async () => {
    const storage = createMemoryStorage({ lazy: true })
    const universe = createUniverse({
      stores: { total: 0 },
      allowStore: () => true,
      storage,
      hotStores: 0,
      actions: {
        sum: (tx) => {
          let total = 0
          for (let i = 0; i < 5; i++) total += (tx.get(`doc:${i}`) as { n: number } | undefined)?.n ?? 0
          tx.set('total', total)
        },
      },
    })
    await universe.ready
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await writeDocs(served.url, 5)
    expect(universe.keys()).toEqual(['total'])
    await universe.act('sum')
    expect(universe.store('total').get()).toBe(0 + 1 + 2 + 3 + 4)
    // Held through store(): read, kept current, and never evicted however many stores pass.
    const held = universe.store('doc:2')
    await universe.load(['doc:2'])
    expect(held.get()).toEqual({ n: 2 })
    const replica = connect({ url: served.url, EventSource })
    cleanups.push(() => replica.close())
    await replica.store('doc:2').set({ n: 22 })
    for (let i = 0; i < 4; i++) await universe.load([`doc:${i}`])
    await until(() => (held.get() as { n: number }).n === 22)
    expect(universe.has('doc:2')).toBe(true)
  })
})
