/**
 * The file storage under real processes: a real full disk (`ulimit -f`), two processes on one
 * folder, a holder killed with SIGKILL, and growth over thousands of large states.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freshDir, openFile, removeDirs } from './support/fileUniverse'
import { expectOneHolderPerFolder } from './support/holderFixtures'
import { killFixtures, runFixture } from './support/runFixture'

afterEach(() => {
  killFixtures()
  removeDirs()
})

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

describe('file storage on a real full disk', () => {
  it('acknowledges only what landed: a restart without the limit has every acknowledged write, each id with one content', async () => {
    const dir = freshDir()
    const { exited } = runFixture('fileFullDisk.ts', { env: { DATA_DIR: dir }, ulimitKb: 16 })
    const { code, stdout, stderr } = await exited
    expect(code, stderr).toBe(0)
    const lines = jsonLines(stdout)
    const acks = lines.filter((line) => 'ack' in line) as Array<{ ack: number; version: number; id: string }>
    const failed = lines.filter((line) => 'failed' in line)
    // The limit was really hit, and writes went on being acknowledged after failures.
    expect(acks.length).toBeGreaterThan(10)
    expect(failed.length).toBeGreaterThan(10)
    expect(acks.some((ack) => ack.ack > (failed[0]?.failed as number))).toBe(true)
    // One writer: each acknowledged write is the next version.
    expect(acks.map((ack) => ack.version)).toEqual(acks.map((_, i) => i + 1))

    const restarted = await openFile(dir)
    const last = acks[acks.length - 1] as { ack: number; version: number; id: string }
    const doc = restarted.universe.store('doc')
    expect(doc.version).toBe(last.version)
    expect((doc.get() as { k: number }).k).toBe(last.ack)
    expect(restarted.universe.cursor).toBe(last.id)
    // Every event still in the log is the acknowledged one with that id (the rest are in the snapshot).
    const byId = new Map(acks.map((ack) => [ack.id, ack.ack]))
    const logged = readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').filter(Boolean)
    for (const line of logged) {
      const { seq, state } = JSON.parse(line) as { seq: number; state: { k: number } }
      expect(state.k).toBe(byId.get(`${restarted.universe.epoch}-${seq}`))
    }
    await restarted.close()
  })
})

describe('one folder, one process', () => {
  it('refuses a second process on the folder, naming it; a holder killed with SIGKILL does not block a restart', async () => {
    await expectOneHolderPerFolder('fileHolder.ts', freshDir())
  })

  it('refuses a second storage in the same process until the first is closed', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    await expect(openFile(dir)).rejects.toThrow(`${dir} is in use by another Zuno file storage`)
    await first.close()
    const again = await openFile(dir)
    await again.close()
  })

  it('refuses a holder whose pid looks gone while it keeps its lock fresh (another container on the same volume)', async () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const lock = join(dir, 'lock')
    // A process in another PID namespace: its pid means nothing here, but it touches its lock every second.
    writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 - 3, host: hostname(), token: 'another-container', startedAt: 0 }))
    // (Its heartbeat runs in a process of its own: taking a lock blocks this one while it waits.)
    const beat = spawn(process.execPath, ['-e', `setInterval(() => require('node:fs').utimesSync(${JSON.stringify(lock)}, new Date(), new Date()), 300)`])
    try {
      await expect(openFile(dir)).rejects.toThrow(`${dir} is in use by another Zuno file storage`)
    } finally {
      beat.kill('SIGKILL')
    }
    // Once it stops (killed), its silent lock is taken over.
    const storage = await openFile(dir)
    await storage.close()
  }, 30_000)

  it('takes over a lock left by this pid in an earlier life (pid 1 in a restarted container)', async () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.pid, host: hostname(), token: 'an-earlier-life', startedAt: 0 }))
    const storage = await openFile(dir)
    await storage.close()
  })
})

describe('file storage growth', () => {
  // 5,000 writes of ~256 KB: about a minute on two cores.
  const WRITES = 5000
  it(
    'keeps the folder within a small multiple of the live state, and restarts with bounded memory',
    async () => {
      const dir = freshDir()
      const written = await runFixture('fileGrowth.ts', { env: { DATA_DIR: dir }, args: ['write', String(WRITES)] }).exited
      expect(written.code, written.stderr).toBe(0)
      const sizes = jsonLines(written.stdout)[0] as { maxFolder: number; folder: number; stateBytes: number; snapshot: number }
      console.log(`${WRITES} writes: ${JSON.stringify(sizes)}`)
      expect(sizes.stateBytes).toBeGreaterThan(250_000)
      // The live state: the store, and small client records (answers name writes, they keep no states).
      expect(sizes.snapshot).toBeLessThan(sizes.stateBytes + 64 * 1024)
      // Log ≤ 4 × snapshot + 8 MiB (plus the line that crossed it), snapshot beside it.
      const bound = 5 * sizes.snapshot + 8 * 1024 * 1024 + 2 * sizes.stateBytes
      expect(sizes.maxFolder).toBeLessThanOrEqual(bound)
      expect(sizes.folder).toBeLessThanOrEqual(bound)

      const loaded = await runFixture('fileGrowth.ts', { env: { DATA_DIR: dir }, args: ['load'], nodeFlags: ['--expose-gc'] }).exited
      expect(loaded.code, loaded.stderr).toBe(0)
      const memory = jsonLines(loaded.stdout)[0] as { rss: number; heapUsed: number; version: number }
      console.log(`restart: ${JSON.stringify(memory)}`)
      expect(memory.version).toBe(WRITES)
      // Recent events are kept to 16 MiB, the live state is a few MiB: far from the history's 1.3 GB.
      expect(memory.heapUsed).toBeLessThan(96 * 1024 * 1024)
      expect(memory.rss).toBeLessThan(320 * 1024 * 1024)
    },
    240_000,
  )
})
