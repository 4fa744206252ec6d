import { EventSource } from 'eventsource'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, createIndexedDbOutbox, type Outbox, type ReplicaOptions, type ReplicaUniverse } from 'zuno'
import { createUniverse } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { serveExpress } from './serveExpress'

// IndexedDB is the outbox's storage, not what is tested here: fake-indexeddb implements the spec in memory.

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve() {
  const served = await serveExpress(createUniverse({ stores: { counter: 0, todos: [] as string[] } }))
  cleanups.push(served.close)
  return served
}

function replica(url: string, options: Partial<ReplicaOptions>): ReplicaUniverse {
  const universe = connect({ url, EventSource, ...options })
  cleanups.push(() => universe.close())
  return universe
}

const offline: typeof fetch = () => Promise.reject(new TypeError('offline'))

describe('IndexedDB outbox', () => {
  it('stores, lists and forgets entries by (clientId, opId)', async () => {
    const outbox = createIndexedDbOutbox({ indexedDB: new IDBFactory() })
    await outbox.put({ clientId: 'a', opId: 1, storeKey: 's', state: 1, queuedAt: 1 })
    await outbox.put({ clientId: 'a', opId: 2, storeKey: 's', state: 2, queuedAt: 2 })
    await outbox.put({ clientId: 'a', opId: 1, storeKey: 's', state: 10, queuedAt: 1 })
    expect((await outbox.load()).map((entry) => ('state' in entry ? entry.state : undefined)).sort()).toEqual([10, 2])
    await outbox.delete('a', 1)
    expect(await outbox.load()).toEqual([{ clientId: 'a', opId: 2, storeKey: 's', state: 2, queuedAt: 2 }])
  })

  it('moves the ops of a format 1 outbox, in their order, to one fresh client from opId 1', async () => {
    const indexedDB = new IDBFactory()
    // A format 1 database, as the protocol v1 client left it: client ids v2 refuses.
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.open('zuno-outbox', 1)
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore('ops', { keyPath: ['clientId', 'opId'] })
        store.put({ clientId: 'device-42', opId: 7, storeKey: 'b', state: 'second', queuedAt: 20 })
        store.put({ clientId: 'device-42', opId: 6, storeKey: 'a', state: 'first', queuedAt: 10 })
      }
      request.onsuccess = () => {
        request.result.close()
        resolve()
      }
      request.onerror = () => reject(request.error)
    })
    const outbox = createIndexedDbOutbox({ indexedDB, newId: () => 'fresh' })
    const moved = (await outbox.load()).sort((a, b) => a.opId - b.opId)
    expect(moved).toEqual([
      { clientId: 'fresh', opId: 1, storeKey: 'a', state: 'first', queuedAt: 10 },
      { clientId: 'fresh', opId: 2, storeKey: 'b', state: 'second', queuedAt: 20 },
    ])
  })
})

describe('ops queued offline survive a reload', () => {
  it('replays them in order after the reload, once each', async () => {
    const { universe, url } = await serve()
    const indexedDB = new IDBFactory()
    const before = replica(url, { fetch: offline, outbox: createIndexedDbOutbox({ indexedDB }) })
    await until(() => before.status.get() === 'connected')
    const counter = before.store<number>('counter', 0)
    const todos = before.store<string[]>('todos', [])
    void counter.set((n) => n + 1).catch(() => {})
    void todos.set((list) => [...list, 'written offline']).catch(() => {})
    void counter.set((n) => n * 10).catch(() => {})
    const outbox: Outbox = createIndexedDbOutbox({ indexedDB })
    await until(() => before.lastError.get()?.code === 'network')
    await until(async () => (await outbox.load()).length === 3)
    before.close() // the page goes away

    const after = replica(url, { outbox: createIndexedDbOutbox({ indexedDB }) })
    await until(() => universe.store('counter').version === 2 && universe.store('todos').version === 1)
    expect(universe.store('counter').get()).toBe(10)
    expect(universe.store('todos').get()).toEqual(['written offline'])
    await until(() => after.pending.get() === 0)
    await until(() => after.store('counter').get() === 10)
    await until(async () => (await outbox.load()).length === 0)
  })

  it('does not apply twice an op whose answer was lost before the reload', async () => {
    const { universe, url } = await serve()
    const indexedDB = new IDBFactory()
    const answersLost: typeof fetch = async (input, init) => {
      await fetch(input, init)
      throw new TypeError('the answer was lost')
    }
    const before = replica(url, { fetch: answersLost, outbox: createIndexedDbOutbox({ indexedDB }) })
    void before.store<number>('counter', 0).set((n) => n + 5).catch(() => {})
    await until(() => universe.store('counter').version === 1)
    before.close()

    const after = replica(url, { outbox: createIndexedDbOutbox({ indexedDB }) })
    await until(() => after.status.get() === 'connected' && after.pending.get() === 0)
    const outbox = createIndexedDbOutbox({ indexedDB })
    await until(async () => (await outbox.load()).length === 0)
    expect(universe.store('counter').version).toBe(1)
    expect(universe.store('counter').get()).toBe(5)
  })

  it('lands every op once when the page goes away with the first one on the wire', async () => {
    const { universe, url } = await serve()
    const indexedDB = new IDBFactory()
    // The request reaches the server and is applied; its answer never comes back.
    const hangs: typeof fetch = async (input, init) => {
      await fetch(input, init)
      return new Promise<Response>(() => {})
    }
    const outbox = createIndexedDbOutbox({ indexedDB })
    // Following another store only, so no echo on the stream settles the op either.
    const before = replica(url, { fetch: hangs, stores: ['todos'], outbox: createIndexedDbOutbox({ indexedDB }) })
    await until(() => before.status.get() === 'connected')
    const counter = before.store<number>('counter', 0)
    for (let i = 0; i < 3; i++) void counter.set((n) => n + 1).catch(() => {})
    await until(() => universe.store('counter').version === 1)
    await until(async () => (await outbox.load()).length === 3)
    before.close() // mid-request

    // The first op was written down as sent: it goes again unchanged and gets its kept answer; the
    // two after it follow. (Sent on a new base, it would be refused as a reused id, and the rest with it.)
    const after = replica(url, { outbox: createIndexedDbOutbox({ indexedDB }) })
    await until(() => after.pending.get() === 0 && universe.store('counter').version === 3).catch((error) => {
      throw new Error(`${error}: pending ${after.pending.get()}, server v${universe.store('counter').version}, last error ${after.lastError.get()?.code} ${after.lastError.get()?.message}`)
    })
    expect(universe.store('counter').get()).toBe(3)
    expect(after.lastError.get()).toBeUndefined()
    await until(async () => (await outbox.load()).length === 0)
  })
})
