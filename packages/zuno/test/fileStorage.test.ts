import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createFileStorage, type FileStorageOptions } from '../src/file/index'
import { createUniverse } from '../src/server/index'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'zuno-file-'))
  dirs.push(dir)
  return dir
}

async function open(dir: string, options: Partial<FileStorageOptions> = {}) {
  const universe = createUniverse({ stores: { counter: 0 }, storage: createFileStorage({ dir, ...options }) })
  await universe.ready
  return universe
}
const write = (universe: Awaited<ReturnType<typeof open>>, baseVersion: number, state: number, opId = baseVersion + 1) =>
  universe.propose({ storeKey: 'counter', baseVersion, state, clientId: 'w', opId })

describe('file storage', () => {
  it('keeps every acknowledged write, the epoch and idempotency across a restart', async () => {
    const dir = freshDir()
    const first = await open(dir)
    for (let v = 0; v < 5; v++) await write(first, v, v + 1)
    const cursor = first.snapshot().cursor
    // No close(): as after a crash.
    const second = await open(dir)
    expect(second.store('counter').get()).toBe(5)
    expect(second.store('counter').version).toBe(5)
    expect(second.snapshot().cursor).toBe(cursor)
    expect(await write(second, 0, 1, 1)).toEqual({ type: 'duplicate', version: 1, state: 1 })
    expect(await write(second, 5, 6)).toMatchObject({ type: 'accepted', event: { version: 6, seq: 6 } })
    // Clients can resume across the restart: recent events are replayable.
    expect(second.since(cursor.replace(/-5$/, '-3'))?.map((entry) => entry.event.version)).toEqual([4, 5, 6])
  })

  it('tolerates a torn last record: that write was never acknowledged', async () => {
    const dir = freshDir()
    const first = await open(dir)
    for (let v = 0; v < 3; v++) await write(first, v, v + 1)
    appendFileSync(join(dir, 'log.jsonl'), '{"storeKey":"counter","version":4,"sta')
    const second = await open(dir)
    expect(second.store('counter').version).toBe(3)
    expect(await write(second, 3, 4)).toMatchObject({ type: 'accepted', event: { version: 4 } })
    const third = await open(dir)
    expect(third.store('counter').get()).toBe(4)
  })

  it('snapshots and compacts the log, and recovers from snapshot plus log', async () => {
    const dir = freshDir()
    const first = await open(dir, { snapshotEvery: 10 })
    for (let v = 0; v < 25; v++) await write(first, v, v + 1)
    const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n')
    expect(lines).toHaveLength(5) // 25 events: two compactions, five since
    const second = await open(dir, { snapshotEvery: 10 })
    expect(second.store('counter').get()).toBe(25)
    expect(second.store('counter').version).toBe(25)
    expect(await write(second, 0, 1, 1)).toMatchObject({ type: 'duplicate' }) // answers survive compaction
  })

  it('flushes on an interval when asked, and on close', async () => {
    const dir = freshDir()
    const storage = createFileStorage({ dir, fsync: 'interval', fsyncIntervalMs: 10 })
    const universe = createUniverse({ stores: { counter: 0 }, storage })
    await universe.ready
    await universe.propose({ storeKey: 'counter', baseVersion: 0, state: 1, clientId: 'w', opId: 1 })
    await universe.close()
    await storage.close()
    expect((await open(dir)).store('counter').get()).toBe(1)
  })
})
