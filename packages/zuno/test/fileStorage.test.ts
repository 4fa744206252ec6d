import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { newClientId } from '../src/id'
import { freshDir, openFile, proposer, removeDirs } from './support/fileUniverse'

afterEach(removeDirs)

describe('file storage', () => {
  it('keeps every acknowledged write, the epoch and idempotency across a restart', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    const write = proposer(first.universe)
    for (let v = 0; v < 5; v++) await write(v, v + 1, v + 1)
    const cursor = first.universe.snapshot().cursor
    await first.storage.close() // the universe is left as it was, as after a crash
    const second = await openFile(dir)
    const again = proposer(second.universe)
    expect(second.universe.store('counter').get()).toBe(5)
    expect(second.universe.store('counter').version).toBe(5)
    expect(second.universe.snapshot().cursor).toBe(cursor)
    // Clients can resume across the restart: recent events are replayable.
    expect(second.universe.since(cursor.replace(/-5$/, '-3'))?.map((entry) => entry.event.version)).toEqual([4, 5])
    expect(await again(5, 6, 1)).toMatchObject({ type: 'accepted', version: 6 })
    await second.close()
  })

  it('answers a retry of an op processed before the restart with its kept answer', async () => {
    const dir = freshDir()
    const clientId = newClientId()
    const first = await openFile(dir)
    await proposer(first.universe, clientId)(0, 1, 1)
    await first.close()
    const second = await openFile(dir)
    const again = proposer(second.universe, clientId)
    expect(await again(0, 1, 1)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 1 })
    expect(await again(1, 2, 2)).toMatchObject({ type: 'accepted', version: 2 })
    await second.close()
  })

  it('tolerates a torn last record: that write was never acknowledged', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    const write = proposer(first.universe)
    for (let v = 0; v < 3; v++) await write(v, v + 1, v + 1)
    await first.close()
    appendFileSync(join(dir, 'log.jsonl'), '{"storeKey":"counter","version":4,"sta')
    const second = await openFile(dir)
    expect(second.universe.store('counter').version).toBe(3)
    expect(await proposer(second.universe)(3, 4, 1)).toMatchObject({ type: 'accepted', version: 4 })
    await second.close()
    const third = await openFile(dir)
    expect(third.universe.store('counter').get()).toBe(4)
    await third.close()
  })

  it('refuses to start on a log damaged in the middle rather than drop what follows', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    const write = proposer(first.universe)
    for (let v = 0; v < 3; v++) await write(v, v + 1, v + 1)
    await first.close()
    const path = join(dir, 'log.jsonl')
    const lines = readFileSync(path, 'utf8').split('\n')
    lines[1] = 'garbage'
    writeFileSync(path, lines.join('\n'))
    await expect(openFile(dir)).rejects.toThrow(path)
  })

  it('snapshots and compacts the log, and recovers from snapshot plus log', async () => {
    const dir = freshDir()
    const first = await openFile(dir, { snapshotEvery: 10 })
    const write = proposer(first.universe)
    for (let v = 0; v < 25; v++) await write(v, v + 1, v + 1)
    const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n')
    expect(lines).toHaveLength(5) // 25 events: two compactions, five since
    await first.close()
    const second = await openFile(dir, { snapshotEvery: 10 })
    expect(second.universe.store('counter').get()).toBe(25)
    expect(second.universe.store('counter').version).toBe(25)
    await second.close()
  })

  it('compacts by size as well as by count: the folder follows the live state', async () => {
    const dir = freshDir()
    const first = await openFile(dir, { logFloorBytes: 64 * 1024, idempotencyWindow: 1 })
    const write = proposer(first.universe)
    let largest = 0
    for (let v = 0; v < 200; v++) {
      await write(v, 'x'.repeat(10_000 + v), v + 1)
      largest = Math.max(largest, statSync(join(dir, 'log.jsonl')).size)
    }
    const snapshot = statSync(join(dir, 'snapshot.json')).size
    // 2 MB written; the log stays under 4 × the snapshot + the floor (plus the line that crossed it).
    expect(largest).toBeLessThanOrEqual(4 * snapshot + 64 * 1024 + 11_000)
    await first.close()
    const second = await openFile(dir)
    expect(second.universe.store('counter').version).toBe(200)
    await second.close()
  })

  it('bounds the events kept for resumes by bytes as well as by count', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    const write = proposer(first.universe)
    for (let v = 0; v < 50; v++) await write(v, 'y'.repeat(1000), v + 1)
    await first.close()
    // The newest lines that fit in 10,000 bytes (about 1.2 KB each), contiguous up to the last.
    const sizes = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((line) => Buffer.byteLength(line) + 1)
    let kept = 0
    for (let bytes = 0; bytes + (sizes[sizes.length - 1 - kept] ?? Infinity) <= 10_000; kept++) bytes += sizes[sizes.length - 1 - kept] ?? 0
    expect(kept).toBeGreaterThan(3)
    const byBytes = await openFile(dir, { recentBytes: 10_000 })
    const epoch = byBytes.universe.epoch
    expect(byBytes.universe.since(`${epoch}-${50 - kept}`)?.map((entry) => entry.event.seq)).toEqual(Array.from({ length: kept }, (_, i) => 51 - kept + i))
    expect(byBytes.universe.since(`${epoch}-${49 - kept}`)).toBeUndefined()
    await byBytes.close()
    const byCount = await openFile(dir, { recent: 5 })
    expect(byCount.universe.since(`${epoch}-45`)).toHaveLength(5)
    expect(byCount.universe.since(`${epoch}-44`)).toBeUndefined()
    await byCount.close()
  })

  it('migrates a format 1 folder (protocol v1) at start, keeping the old files as *.v1', async () => {
    const dir = freshDir()
    // What a v1 server left: a snapshot without `format`, with v1 answers, and log lines after it.
    const v1Snapshot = { epoch: 'oldepoch1', seq: 2, stores: { counter: { version: 2, state: 2 } }, answers: [['device-42\u00001', { version: 1, state: 1 }]] }
    const v1Log = [
      { storeKey: 'counter', version: 3, state: 3, clientId: 'device-42', opId: 3, seq: 3 },
      { storeKey: 'todos', version: 1, state: ['a'], clientId: 'device-42', opId: 4, seq: 4 },
    ]
    writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(v1Snapshot))
    writeFileSync(join(dir, 'log.jsonl'), v1Log.map((line) => `${JSON.stringify(line)}\n`).join(''))
    const opened = await openFile(dir)
    expect(opened.universe.snapshot().stores).toMatchObject({ counter: { version: 3, state: 3 }, todos: { version: 1, state: ['a'] } })
    expect(opened.universe.cursor).toBe('oldepoch1-4') // the same history: clients resume by snapshot or replay as before
    expect(await proposer(opened.universe)(3, 4, 1)).toMatchObject({ type: 'accepted', version: 4 })
    await opened.close()
    expect(JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8'))).toMatchObject({ format: 2, epoch: 'oldepoch1', seq: 4 })
    expect(JSON.parse(readFileSync(join(dir, 'snapshot.json.v1'), 'utf8'))).toEqual(v1Snapshot)
    expect(readFileSync(join(dir, 'log.jsonl.v1'), 'utf8').trim().split('\n')).toHaveLength(2)
    const again = await openFile(dir)
    expect(again.universe.store('counter').get()).toBe(4)
    await again.close()
  })

  it('keeps what it knows of each client small: the folder follows the live state, not the number of clients', async () => {
    const dir = freshDir()
    const opened = await openFile(dir, { snapshotEvery: 1 })
    const big = 'x'.repeat(200_000)
    // 60 clients, each writing a 200 KB state once: 12 MB of history, one 200 KB live state.
    for (let v = 0; v < 60; v++) await proposer(opened.universe)(v, `${v}${big}`, 1)
    await opened.close()
    const snapshot = statSync(join(dir, 'snapshot.json')).size
    expect(snapshot).toBeGreaterThan(200_000)
    expect(snapshot).toBeLessThan(200_000 + 60 * 1_000) // about a few hundred bytes per client record
    const again = await openFile(dir)
    // A retry of the last write is still answered as the original, with its state.
    expect((again.universe.store('counter').get() as string).startsWith('59')).toBe(true)
    await again.close()
  })

  it('refuses a folder of another format, naming the folder', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    await first.close()
    const path = join(dir, 'snapshot.json')
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), format: 3 }))
    await expect(openFile(dir)).rejects.toThrow(`${dir} holds Zuno data of format 3`)
  })

  it('flushes on an interval when asked, and on close', async () => {
    const dir = freshDir()
    const first = await openFile(dir, { fsync: 'interval', fsyncIntervalMs: 10 })
    await proposer(first.universe)(0, 1, 1)
    await first.close()
    const second = await openFile(dir)
    expect(second.universe.store('counter').get()).toBe(1)
    await second.close()
  })
})
