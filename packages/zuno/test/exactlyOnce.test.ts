/**
 * Exactly-once by design: what every storage keeps per client (the mark and the last answers),
 * scoped to the principal, at the smallest bounds. Runs on the memory, file and SQLite storages; the
 * Redis storage runs the same cases in zuno-redis.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createFileStorage } from '../src/file/index'
import { newClientId } from '../src/id'
import type { SyncRequest } from '../src/protocol'
import { createMemoryStorage, createUniverse, type Storage } from '../src/server/index'
import { createSqliteStorage } from '../src/sqlite/index'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

interface Options {
  idempotencyWindow?: number
  clientLifetimeMs?: number
  now?: () => number
}

const storages: Array<[string, (options: Options) => () => Storage]> = [
  ['memory', (options) => {
    const storage = createMemoryStorage(options)
    return () => storage // "restarting" on memory keeps the same process state
  }],
  ['file', (options) => {
    const dir = mkdtempSync(join(tmpdir(), 'zuno-once-'))
    dirs.push(dir)
    return () => createFileStorage({ dir, ...options })
  }],
  ['sqlite', (options) => {
    const dir = mkdtempSync(join(tmpdir(), 'zuno-once-'))
    dirs.push(dir)
    return () => createSqliteStorage({ dir, ...options })
  }],
]

describe.each(storages)('exactly-once on the %s storage', (name, makeStorage) => {
  async function start(options: Options = {}) {
    const open = makeStorage(options)
    let storage: Storage
    const boot = async () => {
      storage = open()
      const universe = createUniverse({ stores: { counter: 0, other: 0 }, storage })
      await universe.ready
      return universe
    }
    let universe = await boot()
    const propose = (principal: string, op: Omit<SyncRequest, 'epoch'> & { epoch?: string }) =>
      universe.propose({ epoch: universe.epoch, ...op }, { principal })
    return {
      get universe() {
        return universe
      },
      propose,
      /** A new universe on the same storage (a restart, for the file storage). */
      async restart() {
        await universe.close()
        // A storage of its own process (file) is closed, as a stopped server's would be; memory's lives on.
        if (name !== 'memory') await storage.close()
        universe = await boot()
      },
    }
  }

  it('answers a retry with the original answer and applies the op once', async () => {
    const server = await start({ idempotencyWindow: 1 })
    const clientId = newClientId()
    const op = { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 1 }
    expect(await server.propose('', op)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 1 })
    expect(await server.propose('', op)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 1 })
    expect(server.universe.store('counter').version).toBe(1)
    // Another client writes on: the retry is still answered with what the op made (read from the log).
    await server.propose('', { storeKey: 'counter', baseVersion: 1, state: 2, clientId: newClientId(), opId: 1 })
    expect(await server.propose('', op)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 1 })
  })

  it('never applies an op twice once its answer is forgotten: the retry is a duplicate with the current truth, not a 409', async () => {
    const server = await start({ idempotencyWindow: 1 })
    const clientId = newClientId()
    const first = { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 1 }
    await server.propose('', first)
    await server.propose('', { storeKey: 'other', baseVersion: 0, state: 7, clientId, opId: 2 })
    await server.propose('', { storeKey: 'counter', baseVersion: 1, state: 2, clientId: newClientId(), opId: 1 })
    // The answer to op 1 has left the window (1): still not applied again, and not a conflict.
    expect(await server.propose('', first)).toEqual({ type: 'accepted', storeKey: 'counter', version: 2, state: 2, duplicate: true })
    // Even rebased onto the current version, the op is not applied again.
    expect(await server.propose('', { ...first, baseVersion: 2, state: 3 })).toMatchObject({ type: 'accepted', duplicate: true })
    expect(server.universe.store('counter').get()).toBe(2)
  })

  it('refuses a reused opId with another store or state, and answers nothing of the other op', async () => {
    const server = await start()
    const clientId = newClientId()
    await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 1 })
    for (const reused of [
      { storeKey: 'other', baseVersion: 0, state: 1, clientId, opId: 1 },
      { storeKey: 'counter', baseVersion: 0, state: 5, clientId, opId: 1 },
    ]) {
      const result = await server.propose('', reused)
      expect(result).toMatchObject({ type: 'refused', error: { code: 'op_id_reused', status: 409 } })
      expect(JSON.stringify(result)).not.toContain('"state"')
    }
    expect(server.universe.snapshot(['counter', 'other']).stores).toMatchObject({ counter: { version: 1 }, other: { version: 0 } })
  })

  it('takes a 409 op again under the same id once rebased: a conflict does not use the id up', async () => {
    const server = await start()
    const [mine, theirs] = [newClientId(), newClientId()]
    await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 10, clientId: theirs, opId: 1 })
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: mine, opId: 1 })).toMatchObject({ type: 'conflict', version: 1 })
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 1, state: 11, clientId: mine, opId: 1 })).toMatchObject({ type: 'accepted', version: 2 })
  })

  it('refuses an op that skips ids, and an unknown client that does not start at 1', async () => {
    const server = await start()
    const clientId = newClientId()
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 2 })).toMatchObject({
      type: 'refused',
      error: { code: 'unknown_client' },
    })
    await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 1 })
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 1, state: 2, clientId, opId: 3 })).toMatchObject({
      type: 'refused',
      error: { code: 'unknown_client' },
    })
    expect(server.universe.store('counter').version).toBe(1)
  })

  it("scopes client ids to their principal: another user's ids reach a client of their own", async () => {
    const server = await start()
    const clientId = newClientId()
    await server.propose('alice', { storeKey: 'counter', baseVersion: 0, state: 42, clientId, opId: 1 })
    // Bob replays Alice's ids, read off nowhere (the stream carries only the tag): he gets no answer of hers.
    const replay = await server.propose('bob', { storeKey: 'counter', baseVersion: 0, state: 42, clientId, opId: 1 })
    expect(replay).toMatchObject({ type: 'conflict', version: 1 }) // a new op of Bob's, on a stale base
    const next = await server.propose('bob', { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 2 })
    expect(next).toMatchObject({ type: 'refused', error: { code: 'unknown_client' } })
    // Alice's next op is still hers and still next.
    expect(await server.propose('alice', { storeKey: 'counter', baseVersion: 1, state: 43, clientId, opId: 2 })).toMatchObject({ type: 'accepted', version: 2 })
  })

  it('records a refusal for good: the retry gets the same refusal, and the next op follows', async () => {
    const server = await start({ idempotencyWindow: 1 })
    const clientId = newClientId()
    const refused = { storeKey: 'not-declared', baseVersion: 0, state: 1, clientId, opId: 1 }
    expect(await server.propose('', refused)).toMatchObject({ type: 'refused', error: { code: 'store_not_allowed' } })
    expect(await server.propose('', refused)).toMatchObject({ type: 'refused', error: { code: 'store_not_allowed' } })
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId, opId: 2 })).toMatchObject({ type: 'accepted' })
  })

  it('refuses an op made in another epoch', async () => {
    const server = await start()
    const result = await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: newClientId(), opId: 1, epoch: 'older' })
    expect(result).toMatchObject({ type: 'refused', error: { code: 'epoch_changed', status: 409 } })
    expect(server.universe.store('counter').version).toBe(0)
  })

  it('forgets a client silent for longer than its lifetime, and then refuses its next op', async () => {
    let now = 1_000_000
    const server = await start({ clientLifetimeMs: 60_000, now: () => now })
    const [quiet, busy] = [newClientId(), newClientId()]
    await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: quiet, opId: 1 })
    now += 30_000
    await server.propose('', { storeKey: 'counter', baseVersion: 1, state: 2, clientId: busy, opId: 1 })
    now += 40_000 // quiet: 70 s; busy: 40 s
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 2, state: 3, clientId: quiet, opId: 2 })).toMatchObject({
      type: 'refused',
      error: { code: 'unknown_client' },
    })
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 2, state: 3, clientId: busy, opId: 2 })).toMatchObject({ type: 'accepted' })
  })

  it('forgets a client at once when its lifetime ends between two sweeps, answers and all', async () => {
    let now = 0
    const server = await start({ clientLifetimeMs: 2_000, now: () => now })
    const [a, b] = [newClientId(), newClientId()]
    await server.propose('', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: a, opId: 1 })
    await server.propose('', { storeKey: 'other', baseVersion: 0, state: 1, clientId: a, opId: 2 })
    now = 1_900
    await server.propose('', { storeKey: 'counter', baseVersion: 1, state: 2, clientId: b, opId: 1 }) // a sweep: a is not due yet
    now = 2_100 // a is past its lifetime, and the next sweep is not due
    expect(await server.propose('', { storeKey: 'counter', baseVersion: 2, state: 3, clientId: a, opId: 3 })).toMatchObject({
      type: 'refused',
      error: { code: 'unknown_client' },
    })
    // Started afresh under the same id, its old answers are gone: op 2 is a new op, not op 2 of before.
    const fresh = { storeKey: 'counter', baseVersion: 2, state: 3, clientId: a, opId: 1 }
    await server.propose('', fresh)
    // A retry of the new op 1 gets its own answer, not the one op 1 had before.
    expect(await server.propose('', fresh)).toEqual({ type: 'accepted', storeKey: 'counter', version: 3, state: 3 })
    expect(await server.propose('', { storeKey: 'other', baseVersion: 1, state: 9, clientId: a, opId: 2 })).toMatchObject({ type: 'accepted', version: 2, state: 9 })
  })

  it('keeps the marks and answers across a restart', async () => {
    const server = await start({ idempotencyWindow: 1 })
    const [alice, bob] = [newClientId(), newClientId()]
    await server.propose('alice', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: alice, opId: 1 })
    await server.propose('bob', { storeKey: 'nope', baseVersion: 0, state: 1, clientId: bob, opId: 1 })
    await server.restart()
    expect(await server.propose('alice', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: alice, opId: 1 })).toMatchObject({ type: 'accepted', version: 1 })
    expect(await server.propose('bob', { storeKey: 'nope', baseVersion: 0, state: 1, clientId: bob, opId: 1 })).toMatchObject({ type: 'refused', error: { code: 'store_not_allowed' } })
    // Another principal gets nothing of Alice's across the restart either.
    expect(await server.propose('mallory', { storeKey: 'counter', baseVersion: 0, state: 1, clientId: alice, opId: 2 })).toMatchObject({ type: 'refused', error: { code: 'unknown_client' } })
    expect(server.universe.store('counter').version).toBe(1)
  })
})
