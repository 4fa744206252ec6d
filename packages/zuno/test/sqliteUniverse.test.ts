/**
 * A universe on `zuno/sqlite` served over HTTP: stores read lazily from the database, a bounded
 * hot set, and a restart on the same folder that keeps states, versions, answers, the store count
 * and the resume log; a replica that writes through it; start time with many stores.
 */
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect } from '../src/index'
import { newClientId } from '../src/id'
import { createUniverse, type UniverseOptions } from '../src/server/index'
import { createSqliteStorage } from '../src/sqlite/index'
import { rawProposal } from './support/rawProposal'
import { openRawStream } from './support/sseReader'
import { freshDir as tempDir, removeDirs } from './support/tempDirs'
import { until } from './support/until'
import { serveUniverse } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeDirs()
})

const freshDir = () => tempDir('zuno-sqlite-universe-')

/** A universe on a SQLite storage in `dir`, served on 127.0.0.1; `stop` closes the server, the universe and the storage. */
async function serveOn(dir: string, options: Partial<UniverseOptions> = {}) {
  const storage = createSqliteStorage({ dir })
  const universe = createUniverse({ stores: { counter: 0 }, allowStore: () => true, storage, ...options })
  await universe.ready
  const served = await serveUniverse(universe)
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await served.close()
    await storage.close()
  }
  cleanups.push(stop)
  return { universe, storage, url: served.url, stop }
}

async function propose(url: string, body: string) {
  const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

async function state(url: string, keys: string) {
  return (await (await fetch(`${url}/state?stores=${keys}`)).json()) as { cursor: string; stores: Record<string, unknown> }
}

describe('a universe on the SQLite storage, over HTTP', () => {
  it('reads stores lazily, keeps the hot set bounded, and keeps states, answers and the resume log across a restart', async () => {
    const dir = freshDir()
    const first = await serveOn(dir, { hotStores: 2 })
    const { epoch } = first.universe
    const clientId = newClientId()
    for (let i = 0; i < 20; i++) {
      const answer = await propose(first.url, rawProposal(epoch, { storeKey: `doc:${i}`, baseVersion: 0, state: { n: i }, clientId, opId: i + 1 }))
      expect(answer.status).toBe(200)
    }
    expect(first.universe.keys().length).toBeLessThanOrEqual(3)
    expect((await state(first.url, 'doc:3,doc:nothing')).stores).toEqual({ 'doc:3': { version: 1, state: { n: 3 } } })
    // A deletion, and a re-creation over HTTP.
    await first.universe.delete('doc:4')
    const before = (await state(first.url, 'doc:4')).cursor
    const recreate = rawProposal(epoch, { storeKey: 'doc:4', baseVersion: 2, state: { n: 44 }, clientId, opId: 21 })
    expect((await propose(first.url, recreate)).body).toMatchObject({ version: 3 })
    // A stale op on an evicted store gets the truth, read from the database.
    for (let i = 10; i < 14; i++) await first.universe.load([`doc:${i}`])
    const stale = await propose(first.url, rawProposal(epoch, { storeKey: 'doc:5', baseVersion: 0, state: { n: 0 }, clientId, opId: 22 }))
    expect(stale.status).toBe(409)
    expect(stale.body).toMatchObject({ version: 1, state: { n: 5 } })
    await first.stop()

    const second = await serveOn(dir, { hotStores: 2 })
    expect(second.universe.epoch).toBe(epoch)
    expect(second.universe.keys()).toEqual(['counter'])
    expect((await state(second.url, 'doc:3,doc:4,doc:19')).stores).toEqual({
      'doc:3': { version: 1, state: { n: 3 } },
      'doc:4': { version: 3, state: { n: 44 }, deletedAt: 2 },
      'doc:19': { version: 1, state: { n: 19 } },
    })
    // The retry of an op from before the restart is answered as it was, not applied again.
    const retried = await propose(second.url, recreate)
    expect(retried.status).toBe(200)
    expect(retried.body).toMatchObject({ version: 3 })
    // A client that resumes from before the restart gets the events since, not a snapshot.
    const resumed = await openRawStream(`${second.url}/sse?stores=doc:4`, { 'last-event-id': before })
    cleanups.push(() => resumed.close())
    const replay = await resumed.nextEvent()
    expect(replay.event).toBe('state')
    expect(JSON.parse(replay.data ?? '')).toMatchObject({ storeKey: 'doc:4', version: 3, state: { n: 44 } })
    expect((await resumed.nextEvent()).event).toBe('resumed')
  })

  it('counts the stores that exist from the database across a restart (maxStores)', async () => {
    const dir = freshDir()
    const first = await serveOn(dir, { hotStores: 0, maxStores: 4 })
    const clientId = newClientId()
    for (let i = 0; i < 3; i++) expect((await propose(first.url, rawProposal(first.universe.epoch, { storeKey: `doc:${i}`, baseVersion: 0, state: i, clientId, opId: i + 1 }))).status).toBe(200)
    await first.stop()
    const second = await serveOn(dir, { hotStores: 0, maxStores: 4 })
    const { epoch } = second.universe
    // The declared `counter` and three more make four, with none of them in memory.
    const refused = await propose(second.url, rawProposal(epoch, { storeKey: 'doc:3', baseVersion: 0, state: 3, clientId, opId: 4 }))
    expect(refused.status).toBe(403)
    expect(JSON.stringify(refused.body)).toContain('store_limit')
    await second.universe.delete('doc:0')
    expect((await propose(second.url, rawProposal(epoch, { storeKey: 'doc:3', baseVersion: 0, state: 3, clientId, opId: 5 }))).status).toBe(200)
  })

  it('serves a replica that follows and writes stores it reads from the database', async () => {
    const dir = freshDir()
    const server = await serveOn(dir, { hotStores: 1 })
    const replica = connect({ url: server.url, EventSource })
    cleanups.push(() => replica.close())
    for (let i = 0; i < 5; i++) await replica.store(`doc:${i}`).set({ n: i })
    const other = connect({ url: server.url, EventSource })
    cleanups.push(() => other.close())
    const doc = other.store('doc:2')
    await until(() => (doc.get() as { n: number } | undefined)?.n === 2)
    await doc.set({ n: 22 })
    await until(() => (replica.store('doc:2').get() as { n: number }).n === 22)
    const read = await server.storage.read(['doc:2'])
    expect(read.stores.get('doc:2')).toEqual({ version: 2, state: { n: 22 } })
  })
})

describe('a universe on the SQLite storage, starting', () => {
  it('is ready on 100,000 stores about as fast as on one', async () => {
    const STORES = 100_000
    const empty = freshDir()
    const full = freshDir()
    const writer = createSqliteStorage({ dir: full, fsync: 'never', recent: 10 })
    const { epoch } = await writer.load()
    for (let i = 0; i < STORES / 1000; i++) {
      const writes = Array.from({ length: 1000 }, (_, j) => ({ storeKey: `doc:${i * 1000 + j}`, baseVersion: 0, state: { title: `document ${i * 1000 + j}` } }))
      writer.commitAction({ principal: '', clientId: 'bulk', opId: i + 1, digest: `bulk-${i}`, epoch, writes, reads: [] })
    }
    await writer.close()
    // Both folders end with the same 10 small commits: the recent events handed back at start are alike.
    for (const dir of [empty, full]) {
      const storage = createSqliteStorage({ dir, fsync: 'never', recent: 10 })
      const image = await storage.load()
      for (let v = 0; v < 10; v++) {
        storage.commit({ principal: '', clientId: 'tail', opId: v + 1, digest: `tail-${v}`, epoch: image.epoch, write: { storeKey: 'tail', baseVersion: v, state: v } })
      }
      await storage.close()
    }
    const ready = async (dir: string) => {
      let best = Number.POSITIVE_INFINITY
      for (let i = 0; i < 5; i++) {
        const started = performance.now()
        const storage = createSqliteStorage({ dir, recent: 10 })
        const universe = createUniverse({ stores: { counter: 0 }, allowStore: () => true, storage })
        await universe.ready
        best = Math.min(best, performance.now() - started)
        await universe.close()
        await storage.close()
      }
      return best
    }
    const emptyMs = await ready(empty)
    const fullMs = await ready(full)
    console.log(`universe.ready best of 5: 1 store ${emptyMs.toFixed(1)} ms, ${STORES} stores ${fullMs.toFixed(1)} ms (10 recent events each)`)
    expect(fullMs).toBeLessThan(emptyMs * 2 + 100)
  }, 120_000)
})
