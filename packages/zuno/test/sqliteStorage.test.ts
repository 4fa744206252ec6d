/**
 * `zuno/sqlite` at the storage level: its decisions (the same as the memory and file storages'),
 * `read()`, the store count, restarts, retention at its smallest bounds, and real processes (a
 * second one on the folder, one killed with SIGKILL mid-burst, a full disk through `ulimit -f`),
 * and a start that does not read the stores.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { opDigest } from '../src/server/clientLedger'
import type { CommitOutcome, CommitRequest, CommittedEvent, StorageImage, Write } from '../src/server/storage'
import { createSqliteStorage, type SqliteStorage, type SqliteStorageOptions } from '../src/sqlite/index'
import { expectOneHolderPerFolder } from './support/holderFixtures'
import { killFixtures, runFixture } from './support/runFixture'

const testDir = fileURLToPath(new URL('.', import.meta.url))
const dirs: string[] = []
const open: SqliteStorage[] = []
afterEach(async () => {
  killFixtures()
  for (const storage of open.splice(0)) await storage.close()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zuno-sqlite-'))
  dirs.push(dir)
  return dir
}

/** A storage on `dir`, loaded; closed after the test unless closed before. */
/** `load()`, with the recent events the storage hands over after it (`recent()`). */
async function loadWhole(storage: SqliteStorage): Promise<StorageImage> {
  const image = await storage.load()
  expect(image.recent).toBeUndefined()
  return { ...image, recent: await storage.recent() }
}

async function start(dir: string, options: Partial<SqliteStorageOptions> = {}) {
  const storage = createSqliteStorage({ dir, ...options })
  open.push(storage)
  // The image as a universe ends up with it: the recent events are read after the start.
  const image = await loadWhole(storage)
  const close = async () => {
    open.splice(open.indexOf(storage), 1)
    await storage.close()
  }
  return { storage, image, close }
}

/** One client's ops on a storage, numbered in order. */
function client(storage: SqliteStorage, epoch: string, clientId = `client-${Math.random()}`, principal = '') {
  let opId = 0
  const request = (write: Write, id = opId + 1): CommitRequest => ({
    principal,
    clientId,
    opId: id,
    digest: opDigest(write.storeKey, write.baseVersion, JSON.stringify(write.state) ?? ''),
    epoch,
    write,
  })
  return {
    clientId,
    request,
    /** Commits the next op; the op number moves on whatever the outcome (as a client's would after a refusal). */
    commit(write: Write): CommitOutcome {
      const outcome = storage.commit(request(write))
      if (outcome.type === 'accepted' || outcome.type === 'conflict') opId += outcome.type === 'accepted' ? 1 : 0
      return outcome
    },
    next: () => ++opId,
  }
}

function accepted(outcome: CommitOutcome): CommittedEvent {
  if (outcome.type !== 'accepted') throw new Error(`expected accepted, got ${JSON.stringify(outcome)}`)
  return outcome.event
}

describe('sqlite storage decisions', () => {
  it('commits, answers a stale base with the current state, and tells whether the store existed', async () => {
    const { storage, image } = await start(freshDir())
    expect(image).toMatchObject({ seq: 0, storeCount: 0, recent: [] })
    expect(image.stores.size).toBe(0)
    const alice = client(storage, image.epoch)
    const first = accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: { n: 1 } }))
    expect(first).toMatchObject({ storeKey: 'a', version: 1, seq: 1, existed: false, state: { n: 1 } })
    expect(first.id).toBe(`${image.epoch}-1`)
    const second = accepted(alice.commit({ storeKey: 'a', baseVersion: 1, state: { n: 2 } }))
    expect(second).toMatchObject({ version: 2, seq: 2, existed: true })
    expect(alice.commit({ storeKey: 'a', baseVersion: 1, state: { n: 3 } })).toEqual({ type: 'conflict', version: 2, state: { n: 2 } })
    expect(alice.commit({ storeKey: 'b', baseVersion: 4, state: 1 })).toEqual({ type: 'conflict', version: 0, state: undefined })
    expect(storage.commit({ ...alice.request({ storeKey: 'a', baseVersion: 2, state: 9 }), epoch: 'other' })).toEqual({ type: 'epoch_changed', epoch: image.epoch })
  })

  it('deletes a store, keeps its tombstone, and tells an op made on the deleted store when it is created again', async () => {
    const { storage, image } = await start(freshDir())
    const alice = client(storage, image.epoch)
    accepted(alice.commit({ storeKey: 'doc', baseVersion: 0, state: 'v1' }))
    const deletion = accepted(alice.commit({ storeKey: 'doc', baseVersion: 1, state: undefined, deleted: true }))
    expect(deletion).toMatchObject({ version: 2, deleted: true, existed: true, state: undefined })
    expect(alice.commit({ storeKey: 'doc', baseVersion: 1, state: 'late' })).toEqual({ type: 'conflict', version: 2, state: undefined, deleted: true })
    expect((await storage.read(['doc'])).stores.get('doc')).toEqual({ version: 2, state: undefined, deleted: true, deletedAt: 2 })
    const again = accepted(alice.commit({ storeKey: 'doc', baseVersion: 2, state: 'v3' }))
    expect(again).toMatchObject({ version: 3, existed: false })
    expect(again.deleted).toBeUndefined()
    // Made on the store before its deletion: told that it was deleted at 2.
    expect(alice.commit({ storeKey: 'doc', baseVersion: 1, state: 'late' })).toEqual({ type: 'conflict', version: 3, state: 'v3', deletedAt: 2 })
    expect((await storage.read(['doc'])).stores.get('doc')).toEqual({ version: 3, state: 'v3', deletedAt: 2 })
  })

  it('answers a retry with the kept answer, a reused opId as reused, and a gap as an unknown client', async () => {
    const { storage, image } = await start(freshDir())
    const alice = client(storage, image.epoch)
    const op = alice.request({ storeKey: 'a', baseVersion: 0, state: 1 })
    const event = accepted(storage.commit(op))
    expect(storage.commit(op)).toEqual({ type: 'answered', answer: { type: 'accepted', storeKey: 'a', version: 1, seq: event.seq } })
    expect(storage.commit({ ...op, digest: 'other' })).toEqual({ type: 'reused' })
    expect(storage.commit(alice.request({ storeKey: 'a', baseVersion: 1, state: 2 }, 5))).toEqual({ type: 'unknown_client' })
    // Client ids are scoped to their principal.
    const mallory = client(storage, image.epoch, alice.clientId, 'mallory')
    expect(storage.commit(mallory.request({ storeKey: 'a', baseVersion: 0, state: 1 }))).toMatchObject({ type: 'conflict', version: 1 })
  })

  it('records a refusal for good like an acceptance: the mark moves past it and a retry is told the same', async () => {
    const { storage, image } = await start(freshDir())
    const alice = client(storage, image.epoch)
    const identity = { principal: '', clientId: alice.clientId, opId: 1, digest: 'd1', epoch: image.epoch }
    const refusal = { ...identity, storeKey: 'a', error: 'invalid_state' as const, message: 'no', issues: [{ message: 'bad', path: ['x'] }] }
    const answered = await storage.refuse(refusal)
    expect(answered).toEqual({ type: 'answered', answer: { type: 'refused', storeKey: 'a', error: 'invalid_state', message: 'no', issues: [{ message: 'bad', path: ['x'] }] } })
    expect(await storage.refuse(refusal)).toEqual(answered)
    expect(storage.commit({ ...alice.request({ storeKey: 'a', baseVersion: 0, state: 1 }, 1), digest: 'd1' })).toEqual(answered)
    // Nothing was written: the next op is opId 2, on version 0.
    expect(accepted(storage.commit(alice.request({ storeKey: 'a', baseVersion: 0, state: 1 }, 2)))).toMatchObject({ seq: 1, version: 1 })
    expect((await storage.read(undefined)).seq).toBe(1)
  })

  it('commits an action as one event, each change telling whether its store existed, or none of it on a moved store', async () => {
    const { storage, image } = await start(freshDir())
    const alice = client(storage, image.epoch)
    accepted(alice.commit({ storeKey: 'from', baseVersion: 0, state: 10 }))
    accepted(alice.commit({ storeKey: 'gone', baseVersion: 0, state: 'x' }))
    const identity = (opId: number) => ({ principal: '', clientId: alice.clientId, opId, digest: `action-${opId}`, epoch: image.epoch })
    const action = storage.commitAction({
      ...identity(alice.next()),
      writes: [
        { storeKey: 'from', baseVersion: 1, state: 5 },
        { storeKey: 'to', baseVersion: 0, state: 5 },
        { storeKey: 'gone', baseVersion: 1, state: undefined, deleted: true },
      ],
      reads: [],
    })
    const event = accepted(action)
    expect(event).toMatchObject({ seq: 3, storeKey: 'from', version: 2, state: 5, existed: true })
    expect(event.changes).toEqual([
      { storeKey: 'from', version: 2, state: 5, existed: true },
      { storeKey: 'to', version: 1, state: 5, existed: false },
      { storeKey: 'gone', version: 2, state: undefined, deleted: true, existed: true },
    ])
    // A read store that moved: a conflict naming it, and nothing written.
    const moved = storage.commitAction({ ...identity(alice.next()), writes: [{ storeKey: 'to', baseVersion: 1, state: 6 }], reads: [{ storeKey: 'from', version: 1 }] })
    expect(moved).toEqual({ type: 'conflict', version: 2, state: 5, storeKey: 'from' })
    const read = await storage.read(['from', 'to', 'gone'])
    expect(read.seq).toBe(3)
    expect(read.stores.get('to')).toEqual({ version: 1, state: 5 })
    // An action that wrote nothing is recorded all the same (the conflict recorded nothing: this is op 4).
    const nothing = identity(4)
    expect(storage.commitAction({ ...nothing, writes: [], reads: [{ storeKey: 'to', version: 1 }] })).toEqual({ type: 'unchanged', seq: 3 })
    expect(storage.commitAction({ ...nothing, writes: [], reads: [] })).toEqual({ type: 'answered', answer: { type: 'accepted', storeKey: '', version: 0, seq: 3 } })
  })

  it('tells the commit listeners every event in log order, a listener’s own commit after the one it heard', async () => {
    const { storage, image } = await start(freshDir())
    const alice = client(storage, image.epoch)
    const bob = client(storage, image.epoch)
    const heard: number[] = []
    storage.onCommit((event) => {
      heard.push(event.seq)
      if (event.seq === 1) accepted(bob.commit({ storeKey: 'b', baseVersion: 0, state: 1 }))
    })
    const stop = storage.onCommit((event) => heard.push(-event.seq))
    accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: 1 }))
    stop()
    accepted(alice.commit({ storeKey: 'a', baseVersion: 1, state: 2 }))
    expect(heard).toEqual([1, -1, 2, -2, 3])
  })
})

describe('sqlite storage options', () => {
  it('refuses bounds and policies that mean nothing, at once', () => {
    const dir = freshDir()
    expect(() => createSqliteStorage({ dir, recent: 0 })).toThrow(RangeError)
    expect(() => createSqliteStorage({ dir, recentBytes: 0 })).toThrow(RangeError)
    expect(() => createSqliteStorage({ dir, idempotencyWindow: 0 })).toThrow(RangeError)
    expect(() => createSqliteStorage({ dir, fsync: 'sometimes' as never })).toThrow(RangeError)
  })

  it('releases the folder when closed while still starting', async () => {
    const dir = freshDir()
    const storage = createSqliteStorage({ dir })
    const loading = storage.load()
    await storage.close()
    await loading
    const again = await start(dir)
    expect(again.image.seq).toBe(0)
  })
})

describe('sqlite storage reads', () => {
  it('reads the stores named, every store with undefined, tombstones included, never-written keys absent, as of one seq', async () => {
    const { storage, image } = await start(freshDir())
    const alice = client(storage, image.epoch)
    accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: { deep: [1, 'two', null] } }))
    accepted(alice.commit({ storeKey: 'b', baseVersion: 0, state: null }))
    accepted(alice.commit({ storeKey: 'c', baseVersion: 0, state: 'c' }))
    accepted(alice.commit({ storeKey: 'c', baseVersion: 1, state: undefined, deleted: true }))
    const some = await storage.read(['a', 'c', 'never', 'a'])
    expect(some.seq).toBe(4)
    expect(some.epoch).toBe(image.epoch)
    expect([...some.stores.keys()].sort()).toEqual(['a', 'c'])
    expect(some.stores.get('a')).toEqual({ version: 1, state: { deep: [1, 'two', null] } })
    expect(some.stores.get('c')).toEqual({ version: 2, state: undefined, deleted: true, deletedAt: 2 })
    const all = await storage.read(undefined)
    expect(all.seq).toBe(4)
    expect(new Map([...all.stores].sort())).toEqual(
      new Map([
        ['a', { version: 1, state: { deep: [1, 'two', null] } }],
        ['b', { version: 1, state: null }],
        ['c', { version: 2, state: undefined, deleted: true, deletedAt: 2 }],
      ]),
    )
    expect((await storage.read([])).stores.size).toBe(0)
    // A read is its own copy: a later write leaves it alone.
    accepted(alice.commit({ storeKey: 'a', baseVersion: 1, state: 2 }))
    expect(some.stores.get('a')?.version).toBe(1)
  })

  it('counts the stores that exist across commits, deletions, re-creations, actions and restarts', async () => {
    const dir = freshDir()
    const first = await start(dir)
    const alice = client(first.storage, first.image.epoch)
    accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: 1 }))
    accepted(alice.commit({ storeKey: 'a', baseVersion: 1, state: 2 }))
    accepted(alice.commit({ storeKey: 'b', baseVersion: 0, state: 1 }))
    accepted(alice.commit({ storeKey: 'b', baseVersion: 1, state: undefined, deleted: true }))
    accepted(alice.commit({ storeKey: 'c', baseVersion: 0, state: undefined, deleted: true })) // deleting one never written
    await first.close()
    let second = await start(dir)
    expect(second.image.storeCount).toBe(1)
    const bob = client(second.storage, second.image.epoch)
    accepted(bob.commit({ storeKey: 'b', baseVersion: 2, state: 'again' }))
    const action = second.storage.commitAction({
      principal: '',
      clientId: bob.clientId,
      opId: bob.next() + 0,
      digest: 'x',
      epoch: second.image.epoch,
      writes: [
        { storeKey: 'a', baseVersion: 2, state: undefined, deleted: true },
        { storeKey: 'd', baseVersion: 0, state: 1 },
        { storeKey: 'e', baseVersion: 0, state: 1 },
      ],
      reads: [],
    })
    accepted(action)
    await second.close()
    second = await start(dir)
    expect(second.image.storeCount).toBe(3) // b (again), d and e; a and c are deleted
    const all = await second.storage.read(undefined)
    expect([...all.stores].filter(([, store]) => !store.deleted).map(([key]) => key).sort()).toEqual(['b', 'd', 'e'])
    expect(all.stores.size).toBe(5)
  })
})

describe('sqlite storage restarts', () => {
  it('keeps the epoch, seq, states, client marks and recent events across a restart', async () => {
    const dir = freshDir()
    const first = await start(dir)
    const alice = client(first.storage, first.image.epoch, 'alice')
    const events = [
      accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: { n: 1 } })),
      accepted(alice.commit({ storeKey: 'a', baseVersion: 1, state: { n: 2 }, patch: [{ op: 'replace', path: '/n', value: 2 }] as never, stateBytes: 7 })),
      accepted(alice.commit({ storeKey: 'b', baseVersion: 0, state: undefined, deleted: true })),
    ]
    const lastOp = alice.request({ storeKey: 'a', baseVersion: 2, state: 3 })
    events.push(accepted(first.storage.commit(lastOp)))
    await first.close()

    const second = await start(dir)
    expect(second.image.epoch).toBe(first.image.epoch)
    expect(second.image.seq).toBe(4)
    // Measured by their rows when read back (the resume log counts them without encoding a frame each).
    const withoutBytes = (list: unknown) => (JSON.parse(JSON.stringify(list)) as Array<Record<string, unknown>>).map(({ stateBytes: _, ...event }) => event)
    expect(withoutBytes(second.image.recent)).toEqual(withoutBytes(events))
    for (const event of second.image.recent ?? []) expect(event.stateBytes).toBeGreaterThan(0)
    expect(second.image.recent?.map((event) => event.id)).toEqual(events.map((event) => event.id))
    expect((await second.storage.read(['a'])).stores.get('a')).toEqual({ version: 3, state: 3 })
    // The client's mark and answer survived: the retry is answered, the next op goes on.
    expect(second.storage.commit(lastOp)).toEqual({ type: 'answered', answer: { type: 'accepted', storeKey: 'a', version: 3, seq: 4 } })
    expect(second.storage.commit(alice.request({ storeKey: 'a', baseVersion: 3, state: 4 }, 6))).toEqual({ type: 'unknown_client' })
    expect(accepted(second.storage.commit(alice.request({ storeKey: 'a', baseVersion: 3, state: 4 }, 5)))).toMatchObject({ seq: 5, id: `${first.image.epoch}-5` })
    // The recent events are handed over once.
    expect(await second.storage.recent()).toEqual([])
  })

  it('keeps one event and one answer per client at the smallest bounds (recent 1, window 1), and forgets older answers for good', async () => {
    const dir = freshDir()
    const first = await start(dir, { recent: 1, idempotencyWindow: 1 })
    const alice = client(first.storage, first.image.epoch)
    const op1 = alice.request({ storeKey: 'a', baseVersion: 0, state: 1 })
    accepted(first.storage.commit(op1))
    for (let v = 1; v < 5; v++) accepted(first.storage.commit(alice.request({ storeKey: 'a', baseVersion: v, state: v + 1 }, v + 1)))
    await first.close()
    const second = await start(dir, { recent: 1, idempotencyWindow: 1 })
    expect(second.image.recent?.map((event) => event.seq)).toEqual([5])
    expect(second.storage.commit(op1)).toEqual({ type: 'processed' })
    expect(second.storage.commit(alice.request({ storeKey: 'a', baseVersion: 4, state: 5 }, 5))).toMatchObject({ type: 'answered' })
    await second.close()
    // What the database holds: one event row, one answer row.
    const Database = (await import('better-sqlite3')).default
    const db = new Database(join(dir, 'zuno.db'), { readonly: true })
    expect(db.prepare('SELECT count(*) AS n FROM events').get()).toEqual({ n: 1 })
    expect(db.prepare('SELECT count(*) AS n FROM answers').get()).toEqual({ n: 1 })
    db.close()
    // Bounds by bytes: two small events fit, a large one pushes them out but is kept itself.
    const third = await start(dir, { recent: 10, recentBytes: 400 })
    const bob = client(third.storage, third.image.epoch)
    accepted(bob.commit({ storeKey: 'b', baseVersion: 0, state: 1 }))
    accepted(bob.commit({ storeKey: 'b', baseVersion: 1, state: 2 }))
    await third.close()
    expect((await start(dir, { recent: 10, recentBytes: 400 })).image.recent?.map((event) => event.seq)).toEqual([5, 6, 7])
    await open[0]?.close()
    open.length = 0
    const fourth = await start(dir, { recent: 10, recentBytes: 400 })
    const carol = client(fourth.storage, fourth.image.epoch)
    accepted(carol.commit({ storeKey: 'c', baseVersion: 0, state: 'x'.repeat(1000) }))
    await fourth.close()
    expect((await start(dir, { recent: 10, recentBytes: 400 })).image.recent?.map((event) => event.seq)).toEqual([8])
  })

  it('opens again after close(), as a new start, the same storage object', async () => {
    const dir = freshDir()
    const { storage, image } = await start(dir, { recent: 2 })
    const alice = client(storage, image.epoch)
    for (let v = 0; v < 3; v++) accepted(alice.commit({ storeKey: 'a', baseVersion: v, state: v + 1 }))
    await storage.close()
    const again = await loadWhole(storage)
    expect(again).toMatchObject({ epoch: image.epoch, seq: 3, storeCount: 1 })
    expect(again.recent?.map((event) => event.seq)).toEqual([2, 3])
    for (let v = 3; v < 6; v++) accepted(alice.commit({ storeKey: 'a', baseVersion: v, state: v + 1 }))
    await storage.close()
    expect((await loadWhole(storage)).recent?.map((event) => event.seq)).toEqual([5, 6])
  })

  it('refuses a second storage on the folder in this process until the first is closed', async () => {
    const dir = freshDir()
    const first = await start(dir)
    await expect(createSqliteStorage({ dir }).load()).rejects.toThrow(`${dir} is in use by another Zuno SQLite storage`)
    await first.close()
    const again = await start(dir)
    expect(again.image.epoch).toBe(first.image.epoch)
  })
})

describe('sqlite storage failures', () => {
  /** A second connection to the storage's database, past its folder lock: how a test makes SQLite itself fail. */
  async function connect(dir: string) {
    const Database = (await import('better-sqlite3')).default
    return new Database(join(dir, 'zuno.db'))
  }

  it('rolls back a commit that fails midway, all of it, answers 503 until it recovers, and never gives its seq to another event', async () => {
    const dir = freshDir()
    const { storage, image } = await start(dir, { recoverEveryMs: 0 })
    const alice = client(storage, image.epoch)
    const heard: number[] = []
    storage.onCommit((event) => heard.push(event.seq))
    accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: 1 }))
    accepted(alice.commit({ storeKey: 'b', baseVersion: 0, state: 1 }))
    const other = await connect(dir)
    // Fails after the store row is written, inside the commit's transaction.
    other.exec("CREATE TRIGGER fail_event BEFORE INSERT ON events WHEN NEW.seq = 3 BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    const op = alice.request({ storeKey: 'a', baseVersion: 1, state: 2 })
    expect(() => storage.commit(op)).toThrow(expect.objectContaining({ code: 'unavailable' }))
    expect(storage.health()).toMatchObject({ ok: false, reason: expect.stringContaining('injected failure') })
    // Failed: every write is refused, reads still answer, and nothing of the failed commit is there.
    expect(() => storage.commit(op)).toThrow(expect.objectContaining({ code: 'unavailable' }))
    await expect(storage.refuse({ ...op, storeKey: 'a', error: 'forbidden', message: 'no' })).rejects.toMatchObject({ code: 'unavailable' })
    expect(await storage.read(['a'])).toEqual({ epoch: image.epoch, seq: 2, stores: new Map([['a', { version: 1, state: 1 }]]) })
    other.exec('DROP TRIGGER fail_event')
    other.close()
    expect(storage.recover()).toBe(true)
    expect(storage.health()).toEqual({ ok: true })
    // The retry goes through, with the next seq after the one that may have reached the disk.
    const event = accepted(storage.commit(op))
    expect(event).toMatchObject({ seq: 4, version: 2 })
    expect(heard).toEqual([1, 2, 4])
    expect((await storage.read(undefined)).seq).toBe(4)
    expect(storage.commit(op)).toMatchObject({ type: 'answered', answer: { seq: 4 } })
  })

  it('takes nothing for written when the write lock was refused, and goes on at the next seq once it recovers', async () => {
    const dir = freshDir()
    const { storage, image } = await start(dir, { recoverEveryMs: 0 })
    const alice = client(storage, image.epoch)
    accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: 1 }))
    const other = await connect(dir)
    other.exec('BEGIN IMMEDIATE') // holds the write lock
    const op = alice.request({ storeKey: 'a', baseVersion: 1, state: 2 })
    expect(() => storage.commit(op)).toThrow(expect.objectContaining({ code: 'unavailable' }))
    expect(storage.recover()).toBe(false) // still locked
    other.exec('ROLLBACK')
    other.close()
    expect(storage.recover()).toBe(true)
    expect(accepted(storage.commit(op))).toMatchObject({ seq: 2, version: 2 })
  })

  it('recovers by itself on its timer', async () => {
    const dir = freshDir()
    const { storage, image } = await start(dir, { recoverEveryMs: 20 })
    const alice = client(storage, image.epoch)
    const other = await connect(dir)
    other.exec('BEGIN IMMEDIATE')
    expect(() => alice.commit({ storeKey: 'a', baseVersion: 0, state: 1 })).toThrow(expect.objectContaining({ code: 'unavailable' }))
    other.exec('ROLLBACK')
    other.close()
    for (let i = 0; i < 100 && !storage.health().ok; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(storage.health()).toEqual({ ok: true })
  })

  it('keeps what was committed under the interval and never policies across a restart', async () => {
    for (const fsync of ['interval', 'never'] as const) {
      const dir = freshDir()
      const first = await start(dir, { fsync, fsyncIntervalMs: 10 })
      const alice = client(first.storage, first.image.epoch)
      accepted(alice.commit({ storeKey: 'a', baseVersion: 0, state: fsync }))
      await new Promise((resolve) => setTimeout(resolve, 30))
      await first.close()
      const second = await start(dir, { fsync })
      expect((await second.storage.read(['a'])).stores.get('a')).toEqual({ version: 1, state: fsync })
    }
  })
})

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

describe('sqlite storage under real processes', () => {
  it('loads the native module only when a storage opens, not on import', async () => {
    const { code, stdout, stderr } = await runFixture('sqliteNative.ts', { env: { DATA_DIR: freshDir() } }).exited
    expect(code, stderr).toBe(0)
    expect(jsonLines(stdout)[0]).toEqual({ imported: false, created: false, opened: true })
  })

  it('refuses a second process on the folder, naming it; a holder killed with SIGKILL does not block a restart', async () => {
    await expectOneHolderPerFolder('sqliteHolder.ts', freshDir())
  }, 30_000)

  it('keeps every acknowledged write of a process killed with SIGKILL mid-burst', async () => {
    const dir = freshDir()
    const clientId = 'burst-client'
    const burst = runFixture('sqliteBurst.ts', { env: { DATA_DIR: dir, CLIENT_ID: clientId, STORES: '4' } })
    // Killed at some point inside the burst, not between runs.
    await burst.printed((out) => out.split('\n').length > 400 + Math.floor(Math.random() * 400))
    burst.child.kill('SIGKILL')
    const { stdout } = await burst.exited
    const acks = jsonLines(stdout) as Array<{ opId: number; storeKey: string; version: number; seq: number; digest: string }>
    expect(acks.length).toBeGreaterThan(400)
    const { storage, image } = await start(dir, { idempotencyWindow: 1 })
    const last = acks[acks.length - 1] as (typeof acks)[number]
    // Every acknowledged write is there (one more may have committed before its ack was printed).
    expect(image.seq === last.seq || image.seq === last.seq + 1).toBe(true)
    const stores = (await storage.read(undefined)).stores
    const latest = new Map<string, (typeof acks)[number]>()
    for (const ack of acks) latest.set(ack.storeKey, ack)
    for (const [storeKey, ack] of latest) {
      const store = stores.get(storeKey)
      expect(store?.version === ack.version || store?.version === ack.version + 1, `${storeKey}: ${store?.version} vs ${ack.version}`).toBe(true)
      if (store?.version === ack.version) expect((store.state as { opId: number }).opId).toBe(ack.opId)
    }
    // The client's record survived too: the retry of its last acknowledged op is answered as it was,
    // or, if one more op committed before its ack was printed, known as processed (a window of 1).
    const retry = storage.commit({
      principal: '',
      clientId,
      opId: last.opId,
      digest: last.digest,
      epoch: image.epoch,
      write: { storeKey: last.storeKey, baseVersion: last.version - 1, state: { opId: last.opId, pad: 'x'.repeat(last.opId % 500) } },
    })
    if (image.seq === last.seq) expect(retry).toEqual({ type: 'answered', answer: { type: 'accepted', storeKey: last.storeKey, version: last.version, seq: last.seq } })
    else expect(retry).toEqual({ type: 'processed' })
    console.log(`killed after ${acks.length} acknowledged writes; restarted at seq ${image.seq}`)
  }, 60_000)

  it('acknowledges only what landed on a real full disk: a restart has every acknowledged write, each event id with one content', async () => {
    const dir = freshDir()
    const { code, stdout, stderr } = await runFixture('sqliteFullDisk.ts', { env: { DATA_DIR: dir }, ulimitKb: 1024 }).exited
    expect(code, stderr).toBe(0)
    const lines = jsonLines(stdout)
    const acks = lines.filter((line) => 'ack' in line) as Array<{ ack: number; version: number; id: string; seq: number }>
    const failed = lines.filter((line) => 'failed' in line) as Array<{ failed: number; health: { ok: boolean; reason?: string }; recovered: boolean }>
    const done = lines.find((line) => 'done' in line)
    console.log(`full disk: ${acks.length} acknowledged, ${failed.length} failed (${done?.recovered} recovered); first failure: ${failed[0]?.health.reason}`)
    // The limit was really hit, and writes went on being acknowledged after failures.
    expect(acks.length).toBeGreaterThan(10)
    expect(failed.length).toBeGreaterThan(3)
    expect(failed.every((line) => line.health.ok === false)).toBe(true)
    expect(acks.some((ack) => ack.ack > (failed[0]?.failed as number))).toBe(true)
    // One writer: each acknowledged write is the next version; seqs only grow (a failed one is skipped, never reused).
    expect(acks.map((ack) => ack.version)).toEqual(acks.map((_, i) => i + 1))
    for (let i = 1; i < acks.length; i++) expect((acks[i] as (typeof acks)[number]).seq).toBeGreaterThan((acks[i - 1] as (typeof acks)[number]).seq)

    const { storage, image } = await start(dir, { recent: 2 })
    const last = acks[acks.length - 1] as (typeof acks)[number]
    const doc = (await storage.read(['doc'])).stores.get('doc')
    expect(doc?.version).toBe(last.version)
    expect((doc?.state as { k: number }).k).toBe(last.ack)
    expect(image.seq).toBeGreaterThanOrEqual(last.seq)
    // Every event still kept is the acknowledged one with that id.
    const byId = new Map(acks.map((ack) => [ack.id, ack.ack]))
    expect(image.recent?.length).toBeGreaterThan(0)
    for (const event of image.recent ?? []) expect((event.state as { k: number }).k).toBe(byId.get(event.id))
  }, 120_000)
})

describe('sqlite storage start', () => {
  it('starts on 100,000 stores about as fast as on none: load() reads no store', async () => {
    const STORES = 100_000
    const empty = freshDir()
    const few = freshDir()
    const full = freshDir()
    // The recent events (bounded: 1,000 here) are read at start: both folders end with the same 1,000 small commits.
    const tail = async (dir: string, keys: number) => {
      const { storage, image, close } = await start(dir, { fsync: 'never' })
      const versions = (await storage.read(undefined)).stores
      const alice = client(storage, image.epoch)
      for (let i = 0; i < 1000; i++) {
        const storeKey = `doc:${i % keys}`
        accepted(alice.commit({ storeKey, baseVersion: versions.get(storeKey)?.version ?? 0, state: { title: `edit ${i}` } }))
        versions.set(storeKey, { version: (versions.get(storeKey)?.version ?? 0) + 1, state: undefined })
      }
      await close()
    }
    const writer = await start(full, { fsync: 'never' })
    for (let i = 0; i < STORES / 1000; i++) {
      const writes = Array.from({ length: 1000 }, (_, j) => ({ storeKey: `doc:${i * 1000 + j}`, baseVersion: 0, state: { title: `document ${i * 1000 + j}`, body: 'lorem ipsum '.repeat(8) } }))
      accepted(writer.storage.commitAction({ principal: '', clientId: 'bulk', opId: i + 1, digest: `bulk-${i}`, epoch: writer.image.epoch, writes, reads: [] }))
    }
    await writer.close()
    await tail(full, 1000)
    await tail(few, 10)
    await (await start(empty)).close()

    const time = async (dir: string) => {
      const samples: number[] = []
      for (let i = 0; i < 7; i++) {
        const started = performance.now()
        const { image, close } = await start(dir)
        samples.push(performance.now() - started)
        expect(image.stores.size).toBe(0)
        await close()
      }
      return Math.min(...samples)
    }
    const emptyMs = await time(empty)
    const fewMs = await time(few)
    const fullMs = await time(full)
    const { image, storage } = await start(full)
    expect(image.storeCount).toBe(STORES)
    expect(image.recent).toHaveLength(1000)
    expect((await storage.read(['doc:99999'])).stores.get('doc:99999')).toMatchObject({ version: 1 })
    console.log(`load() best of 7: empty ${emptyMs.toFixed(1)} ms; 10 stores + 1,000 recent events ${fewMs.toFixed(1)} ms; ${STORES} stores + 1,000 recent events ${fullMs.toFixed(1)} ms`)
    // Issue #17 asks for 2×; the bound here is generous, for a loaded machine.
    expect(fullMs).toBeLessThan(fewMs * 2 + 50)
  }, 180_000)

  it('keeps the folder within a small multiple of the live state over thousands of large writes', async () => {
    const dir = freshDir()
    const { storage, image, close } = await start(dir, { fsync: 'never', recentBytes: 1024 * 1024 })
    const alice = client(storage, image.epoch)
    const WRITES = 2000
    const versions = [0, 0, 0, 0]
    let folder = 0
    const folderBytes = () => readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0)
    for (let k = 0; k < WRITES; k++) {
      // ~64 KB, different every time, over four stores.
      const state = { k, items: Array.from({ length: 400 }, (_, i) => ({ id: i, text: `${k}-${i}-${'y'.repeat(140)}` })) }
      versions[k % 4] = accepted(alice.commit({ storeKey: `doc${k % 4}`, baseVersion: versions[k % 4] as number, state })).version
      if (k % 100 === 99) folder = Math.max(folder, folderBytes())
    }
    await close()
    const live = 4 * JSON.stringify({ k: 0, items: Array.from({ length: 400 }, (_, i) => ({ id: i, text: `0-${i}-${'y'.repeat(140)}` })) }).length
    console.log(`${WRITES} writes of ~${Math.round(live / 4 / 1024)} KB: history ${Math.round((WRITES * live) / 4 / 1024 / 1024)} MiB, largest folder ${(folder / 1024 / 1024).toFixed(1)} MiB, after close ${(folderBytes() / 1024 / 1024).toFixed(1)} MiB`)
    // The live state (~0.25 MiB), 1 MiB of recent events, the write-ahead log (checkpointed at ~4 MiB) and free pages.
    expect(folder).toBeLessThan(16 * 1024 * 1024)
    const restarted = await start(dir)
    expect((await restarted.storage.read(['doc3'])).stores.get('doc3')?.version).toBe(WRITES / 4)
  }, 120_000)

  it('measures commit throughput by fsync policy', async () => {
    const results: string[] = []
    for (const fsync of ['always', 'never'] as const) {
      const { storage, image } = await start(freshDir(), { fsync })
      const alice = client(storage, image.epoch)
      const COUNT = fsync === 'always' ? 500 : 5000
      const started = performance.now()
      for (let v = 0; v < COUNT; v++) accepted(alice.commit({ storeKey: `doc${v % 100}`, baseVersion: Math.floor(v / 100), state: { v, text: 'x'.repeat(200) } }))
      const ms = performance.now() - started
      results.push(`${fsync}: ${Math.round((COUNT / ms) * 1000)} commits/s`)
    }
    console.log(`commit throughput (one client, ~250-byte states): ${results.join(', ')}`)
  }, 60_000)
})

describe('sqlite storage on Bun', () => {
  const bun = join(testDir, '../node_modules/.bin/bun')
  it.runIf(existsSync(bun))('commits, restarts, reads and refuses a second storage under the real Bun (bun:sqlite)', () => {
    const dir = freshDir()
    const output = execFileSync(bun, [join(testDir, 'fixtures/sqliteOnBun.ts')], { env: { ...process.env, DATA_DIR: dir }, encoding: 'utf8', timeout: 30_000 })
    expect(JSON.parse(output.trim().split('\n').pop() as string)).toEqual({
      runtime: 'bun',
      locked: true,
      seq: 3,
      storeCount: 1,
      doc: { version: 2, deleted: true, deletedAt: 2 },
      other: { version: 1, state: { n: 1 } },
      never: false,
      recent: 3,
      retry: 'answered',
    })
  }, 60_000)
})
