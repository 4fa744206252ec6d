/**
 * The SQLite storage as an operator, an attacker and a new user meet it (a fresh-context review of
 * issue #17; each finding failed first): another storage's data in the folder, a resume racing the
 * history read after a start, a failing statement under Bun, requests while the history is read,
 * and reads and writes right after a failure's recovery.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createFileStorage } from '../src/file/index'
import { parseEventId } from '../src/protocol'
import { createUniverse } from '../src/server/index'
import type { CommitRequest } from '../src/server/storage'
import { createSqliteStorage } from '../src/sqlite/index'
import { openRawStream } from './support/sseReader'
import { freshDir as tempDir, removeDirs } from './support/tempDirs'
import { serveUniverse } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeDirs()
})

const freshDir = () => tempDir('zuno-review2-')

const op = (epoch: string, opId: number, storeKey: string, baseVersion: number, state: unknown, clientId = 'review2-client'): CommitRequest => ({
  principal: '',
  clientId,
  opId,
  digest: `d${opId}`,
  epoch,
  write: { storeKey, baseVersion, state },
})

describe('an operator switching storages on one data folder', () => {
  it('a SQLite storage opened on a folder holding file-storage data does not start empty as if it were new', async () => {
    const dir = freshDir()
    const file = createFileStorage({ dir })
    const image = await file.load()
    expect((await file.commit(op(image.epoch, 1, 'doc', 0, { n: 1 }))).type).toBe('accepted')
    await file.close()

    const sqlite = createSqliteStorage({ dir })
    cleanups.push(() => sqlite.close())
    const started = await sqlite.load().then(
      (loaded) => ({ ok: true as const, loaded }),
      (error: Error) => ({ ok: false as const, message: error.message }),
    )
    // Expected: refused (the folder holds another storage's data), or that data carried over.
    if (started.ok) {
      const read = await sqlite.read(['doc'])
      expect({ epoch: started.loaded.epoch, seq: started.loaded.seq, storeCount: started.loaded.storeCount, doc: read.stores.get('doc') }).toEqual({
        epoch: image.epoch,
        seq: 1,
        storeCount: 1,
        doc: { version: 1, state: { n: 1 } },
      })
    } else {
      expect(started.message).toContain(dir)
    }
  })

  it('a file storage opened on a folder holding SQLite data does not start empty as if it were new', async () => {
    const dir = freshDir()
    const sqlite = createSqliteStorage({ dir })
    const image = await sqlite.load()
    expect(sqlite.commit(op(image.epoch, 1, 'doc', 0, { n: 1 })).type).toBe('accepted')
    await sqlite.close()

    const file = createFileStorage({ dir })
    cleanups.push(() => file.close())
    const started = await file.load().then(
      (loaded) => ({ ok: true as const, loaded }),
      (error: Error) => ({ ok: false as const, message: error.message }),
    )
    if (started.ok) {
      expect({ epoch: started.loaded.epoch, seq: started.loaded.seq, doc: started.loaded.stores.get('doc') }).toEqual({ epoch: image.epoch, seq: 1, doc: { version: 1, state: { n: 1 } } })
    } else {
      expect(started.message).toContain(dir)
    }
  })

  it('a file storage and a SQLite storage cannot hold one folder at the same time (held)', async () => {
    const dir = freshDir()
    const sqlite = createSqliteStorage({ dir })
    cleanups.push(() => sqlite.close())
    await sqlite.load()
    await expect(createFileStorage({ dir }).load()).rejects.toThrow(/in use|holds the SQLite storage's data/)
    const other = freshDir()
    const file = createFileStorage({ dir: other })
    cleanups.push(() => file.close())
    await file.load()
    await expect(createSqliteStorage({ dir: other }).load()).rejects.toThrow(/in use|holds the file storage's data/)
  })

})

describe('a resume from before a restart, with commits racing the history read after the start', () => {
  for (const racing of [0, 2, 7]) {
    it(`replays without gap or duplicate, or answers a snapshot (recent: 5, ${racing} commits before recent() runs)`, async () => {
      const dir = freshDir()
      const first = createSqliteStorage({ dir, recent: 5 })
      const { epoch } = await first.load()
      const before = new Map<string, number>()
      for (let i = 1; i <= 10; i++) {
        const key = `doc:${i % 3}`
        expect(first.commit(op(epoch, i, key, before.get(key) ?? 0, { i })).type).toBe('accepted')
        before.set(key, (before.get(key) ?? 0) + 1)
      }
      await first.close()

      const storage = createSqliteStorage({ dir, recent: 5 })
      const universe = createUniverse({ storage, allowStore: () => true, retention: 100 })
      cleanups.push(async () => {
        await universe.close()
        await storage.close()
      })
      await universe.ready
      // Synchronously after ready, before the history is read (setTimeout 0): commits from another client.
      const heads = (await storage.read(['doc:0', 'doc:1', 'doc:2'])).stores
      const versions = new Map([...heads].map(([key, stored]) => [key, stored.version]))
      for (let i = 0; i < racing; i++) {
        const key = `doc:${i % 3}`
        const outcome = storage.commit(op(epoch, i + 1, key, versions.get(key) ?? 0, { racing: i }, 'racer'))
        expect(outcome.type).toBe('accepted')
        versions.set(key, (versions.get(key) ?? 0) + 1)
      }
      const served = await serveUniverse(universe)
      cleanups.push(() => served.close())
      for (const from of [4, 5, 6, 8, 10]) {
        const stream = await openRawStream(`${served.url}/sse`, { 'last-event-id': `${epoch}-${from}` })
        const frames = await stream.drainEvents(300)
        stream.close()
        const kinds = frames.map((frame) => frame.event)
        console.log(`racing ${racing}, resume from ${from}: ${kinds[0] === 'snapshot' ? 'snapshot' : 'replay'}`)
        if (kinds[0] === 'snapshot') continue
        const seqs = frames.filter((frame) => frame.event === 'state').map((frame) => parseEventId(frame.id ?? '')?.seq)
        const expected = Array.from({ length: 10 + racing - from }, (_, i) => from + 1 + i)
        expect(seqs, `resume from ${from}: ${kinds.join(',')}`).toEqual(expected)
        expect(kinds.at(-1)).toBe('resumed')
      }
    })
  }
})

describe('a failing statement under Bun (bun:sqlite), as under Node.js', () => {
  const testDir = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname)
  const bun = join(testDir, '../node_modules/.bin/bun')
  it('rolls back, answers unavailable, reads on, recovers, skips the seq, and restarts there', async () => {
    const { execFileSync } = await import('node:child_process')
    const { existsSync } = await import('node:fs')
    const results: unknown[] = []
    for (const runtime of existsSync(bun) ? [bun, 'tsx'] : ['tsx']) {
      const dir = freshDir()
      const command = runtime === 'tsx' ? process.execPath : runtime
      const args = runtime === 'tsx' ? ['--import', 'tsx', join(testDir, 'fixtures/sqliteBunFailure.ts')] : [join(testDir, 'fixtures/sqliteBunFailure.ts')]
      const output = execFileSync(command, args, { cwd: testDir, env: { ...process.env, DATA_DIR: dir }, encoding: 'utf8', timeout: 60_000 })
      results.push(JSON.parse(output.trim().split('\n').pop() as string))
    }
    for (const result of results) {
      expect(result).toMatchObject({
        failedCode: 'unavailable',
        health: false,
        readDuring: { version: 1, state: 1 },
        recovered: true,
        retried: 4,
        seq: 4,
        recent: [1, 2, 4],
        a: { version: 2, state: 2 },
      })
    }
    expect(results.length).toBe(2)
  }, 120_000)
})

describe('requests right after a start, while the history is still being read', () => {
  it('a store read (GET /state, a proposal) does not wait for the recent events (Storage.recent) to arrive', async () => {
    const dir = freshDir()
    const first = createSqliteStorage({ dir })
    const { epoch } = await first.load()
    for (let i = 1; i <= 20; i++) first.commit(op(epoch, i, `doc:${i}`, 0, { i }))
    await first.close()

    const storage = createSqliteStorage({ dir })
    // The history takes 3 s to arrive (Redis with a large history, a slow disk): the start does not wait for it.
    const slow = { ...storage, recent: async () => (await new Promise((resolve) => setTimeout(resolve, 3000)), storage.recent()) }
    const universe = createUniverse({ storage: slow, allowStore: () => true })
    cleanups.push(async () => {
      await universe.close()
      await storage.close()
    })
    const startedAt = performance.now()
    await universe.ready
    const readyMs = performance.now() - startedAt
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    const asked = performance.now()
    const response = await fetch(`${served.url}/state?stores=doc:7`)
    const body = (await response.json()) as { stores: Record<string, unknown> }
    const readMs = performance.now() - asked
    expect(body.stores['doc:7']).toEqual({ version: 1, state: { i: 7 } })
    console.log(`ready in ${readyMs.toFixed(0)} ms; first GET /state of one store took ${readMs.toFixed(0)} ms`)
    expect(readyMs).toBeLessThan(1000)
    // Expected: a store read waits for nothing but the storage's read; observed: it waits for the history too.
    expect(readMs).toBeLessThan(1000)
  }, 20_000)
})

describe('a universe over HTTP on a SQLite storage that fails, then recovers', () => {
  it('answers writes 503 (never 500), reads stores not in memory meanwhile, and after recovery reads and writes them again at once', async () => {
    const { newClientId } = await import('../src/id')
    const { rawProposal } = await import('./support/rawProposal')
    const dir = freshDir()
    const storage = createSqliteStorage({ dir, recoverEveryMs: 100 })
    const universe = createUniverse({ storage, allowStore: () => true, hotStores: 0 })
    cleanups.push(async () => {
      await universe.close()
      await storage.close()
    })
    await universe.ready
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    const { epoch } = universe
    const clientId = newClientId()
    const post = async (body: string) => {
      const response = await fetch(`${served.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }
    for (let i = 1; i <= 3; i++) expect((await post(rawProposal(epoch, { storeKey: `doc:${i}`, baseVersion: 0, state: i, clientId, opId: i }))).status).toBe(200)
    const stream = await openRawStream(`${served.url}/sse?stores=doc:1,doc:2,doc:3`)
    cleanups.push(() => stream.close())
    expect((await stream.nextEvent()).event).toBe('snapshot')
    const Database = (await import('better-sqlite3')).default
    const other = new Database(join(dir, 'zuno.db'))
    other.exec("CREATE TRIGGER fail_event BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    const failed = await post(rawProposal(epoch, { storeKey: 'doc:1', baseVersion: 1, state: 10, clientId, opId: 4 }))
    expect(failed.status).toBe(503)
    // While failed: writes 503, reads of stores not in memory go on.
    expect((await post(rawProposal(epoch, { storeKey: 'doc:2', baseVersion: 1, state: 20, clientId, opId: 4 }))).status).toBe(503)
    const read = (await (await fetch(`${served.url}/state?stores=doc:2,doc:3`)).json()) as { stores: Record<string, unknown> }
    expect(read.stores).toEqual({ 'doc:2': { version: 1, state: 2 }, 'doc:3': { version: 1, state: 3 } })
    other.exec('DROP TRIGGER fail_event')
    other.close()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(storage.health()).toEqual({ ok: true })
    // Recovered: a store not in memory is read at once (observed: the read waits for the skipped seq, 3 × 5 s, then 503).
    const t1 = performance.now()
    const after = await fetch(`${served.url}/state?stores=doc:2`)
    const afterBody = await after.text()
    console.log(`GET /state after recovery: ${after.status} in ${(performance.now() - t1).toFixed(0)} ms: ${afterBody}`)
    expect(after.status).toBe(200)
    expect(performance.now() - t1).toBeLessThan(2000)
    const retried = await post(rawProposal(epoch, { storeKey: 'doc:1', baseVersion: 1, state: 10, clientId, opId: 4 }))
    expect(retried.status).toBe(200)
    expect((await post(rawProposal(epoch, { storeKey: 'doc:1', baseVersion: 1, state: 10, clientId, opId: 4 }))).status).toBe(200)
    const frames = await stream.drainEvents(300)
    expect(frames.filter((frame) => frame.event === 'state').map((frame) => JSON.parse(frame.data ?? '{}'))).toMatchObject([{ storeKey: 'doc:1', version: 2, state: 10 }])
  })
})
