/**
 * Where the demo keeps its state: SQLite by default; the file log when asked (`ZUNO_STORAGE=file`),
 * when the folder already holds one (an upgrade loses nothing), or when better-sqlite3 cannot load
 * (said on stderr). Real demo processes on real folders.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createFileStorage } from 'zuno/file'
import { createUniverse } from 'zuno/server'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { epochOf, rawProposal } from '../../../packages/zuno/test/support/rawProposal'
import { demoStores } from '../src/stores'
import { type DemoProcessOptions, demoProcesses } from './support/demoProcess'

const withoutSqlite = new URL('./support/withoutSqlite.mjs', import.meta.url).href
const started: Array<ReturnType<typeof demoProcesses>> = []
afterAll(() => {
  for (const demos of started) demos.stop()
})

function demosWith(name: string, options: DemoProcessOptions = {}) {
  const demos = demoProcesses(name, options)
  started.push(demos)
  return demos
}

const counterOf = async (url: string) =>
  ((await (await fetch(`${url}/state?stores=counter`)).json()) as { stores: { counter: { version: number; state: number } } }).stores.counter

async function setCounter(url: string, baseVersion: number, state: number): Promise<void> {
  const response = await fetch(`${url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: rawProposal(await epochOf(url), { storeKey: 'counter', baseVersion, state }),
  })
  expect(response.status).toBe(200)
}

describe('the demo’s embedded storage', () => {
  it('is SQLite in a new folder', async () => {
    const demos = demosWith('sqlite-default')
    const port = await freePort()
    const demo = await demos.start(port)
    expect(demo.output()).toContain(`data in ${demos.dataDir} (SQLite)`)
    await setCounter(`http://127.0.0.1:${port}/zuno`, 0, 3)
    expect(existsSync(join(demos.dataDir, 'zuno.db'))).toBe(true)
    expect(existsSync(join(demos.dataDir, 'log.jsonl'))).toBe(false)
  }, 30_000)

  it('stays the file log an earlier demo wrote, with its state; ZUNO_STORAGE=sqlite on that folder is refused', async () => {
    const demos = demosWith('earlier-log')
    const storage = createFileStorage({ dir: demos.dataDir })
    const earlier = createUniverse({ stores: demoStores, storage })
    await earlier.store('counter').set(41)
    await earlier.close()
    await storage.close()

    const port = await freePort()
    const demo = await demos.start(port)
    expect(demo.output()).toContain('(file log)')
    expect(await counterOf(`http://127.0.0.1:${port}/zuno`)).toEqual({ version: 1, state: 41 })
    expect(existsSync(join(demos.dataDir, 'zuno.db'))).toBe(false)
    demo.kill('SIGKILL')
    await new Promise((resolve) => demo.once('exit', resolve))

    const strict = demosWith('earlier-log-strict', { env: { ZUNO_STORAGE: 'sqlite', ZUNO_DATA_DIR: demos.dataDir } })
    await expect(strict.start(await freePort())).rejects.toThrow(/holds a file log \(log\.jsonl\).*another folder/)
  }, 30_000)

  it('refuses a ZUNO_STORAGE it does not know, naming the ones it does', async () => {
    const demos = demosWith('unknown', { env: { ZUNO_STORAGE: 'postgres' } })
    await expect(demos.start(await freePort())).rejects.toThrow('ZUNO_STORAGE is "postgres": use sqlite or file')
  }, 30_000)

  it('falls back to the file log, saying why, where better-sqlite3 cannot load; the folder stays one after', async () => {
    const demos = demosWith('no-sqlite', { preload: [withoutSqlite] })
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/zuno`
    const demo = await demos.start(port)
    expect(demo.output()).toMatch(/better-sqlite3 could not be loaded \(Cannot find package 'better-sqlite3'.*\): keeping the state in a file log/)
    expect(demo.output()).toContain('(file log)')
    await setCounter(url, 0, 9)
    demo.kill('SIGKILL')
    await new Promise((resolve) => demo.once('exit', resolve))

    // better-sqlite3 works again (say, rebuilt): the folder is a file log, so the state is still there.
    const again = demosWith('no-sqlite-after', { env: { ZUNO_DATA_DIR: demos.dataDir } })
    const restarted = await again.start(port)
    expect(restarted.output()).toContain('(file log)')
    expect(restarted.output()).not.toContain('could not be loaded')
    expect(await counterOf(url)).toEqual({ version: 1, state: 9 })
  }, 30_000)

  it('is refused with ZUNO_STORAGE=sqlite where better-sqlite3 cannot load', async () => {
    const demos = demosWith('no-sqlite-strict', { env: { ZUNO_STORAGE: 'sqlite' }, preload: [withoutSqlite] })
    await expect(demos.start(await freePort())).rejects.toThrow(/ZUNO_STORAGE=sqlite, but better-sqlite3 could not be loaded/)
  }, 30_000)

  it('refuses, in one line and without a stack, what it cannot use: a SQLite folder without better-sqlite3, an empty or file ZUNO_DATA_DIR, Redis and ZUNO_STORAGE together', async () => {
    const sqliteFolder = demosWith('sqlite-folder')
    const first = await sqliteFolder.start(await freePort())
    await setCounter(`http://127.0.0.1:${first.output().match(/127\.0\.0\.1:(\d+)/)?.[1]}/zuno`, 0, 5)
    first.kill('SIGKILL')
    await new Promise((resolve) => first.once('exit', resolve))
    const refusals: Array<[DemoProcessOptions, RegExp]> = [
      [{ env: { ZUNO_DATA_DIR: sqliteFolder.dataDir }, preload: [withoutSqlite] }, /holds SQLite data \(zuno\.db\), but better-sqlite3 could not be loaded .*: rebuild it/],
      [{ env: { ZUNO_DATA_DIR: '' } }, /ZUNO_DATA_DIR is empty/],
      [{ env: { ZUNO_REDIS_URL: 'redis://127.0.0.1:6379', ZUNO_STORAGE: 'file' } }, /set ZUNO_REDIS_URL or ZUNO_STORAGE, not both/],
      [{ env: { ZUNO_REDIS_URL: 'redis://127.0.0.1:6379', ZUNO_STORAGE: 'postgres' } }, /ZUNO_STORAGE is "postgres"/],
    ]
    const aFile = join(sqliteFolder.dataDir, 'not-a-folder')
    writeFileSync(aFile, 'x')
    refusals.push([{ env: { ZUNO_DATA_DIR: aFile } }, /could not start: /])
    for (const [options, why] of refusals) {
      const refused = demosWith('refused', options)
      const error = (await refused.start(await freePort()).catch((caught: Error) => caught)) as Error
      expect(error.message).toMatch(/demo exited with 1/)
      expect(error.message).toMatch(/\[demo\] could not start: /)
      expect(error.message).toMatch(why)
      expect(error.message).not.toMatch(/\n\s+at /)
    }
    // The SQLite folder's state is untouched: with better-sqlite3 it is all there.
    const again = demosWith('sqlite-folder-again', { env: { ZUNO_DATA_DIR: sqliteFolder.dataDir } })
    const port = await freePort()
    await again.start(port)
    expect(await counterOf(`http://127.0.0.1:${port}/zuno`)).toEqual({ version: 1, state: 5 })
  }, 60_000)

  it('shows a relative ZUNO_DATA_DIR as the folder it is, under the example', async () => {
    const demos = demosWith('relative', { env: { ZUNO_DATA_DIR: '.data-relative-test' } })
    const demo = await demos.start(await freePort())
    const folder = join(new URL('..', import.meta.url).pathname, '.data-relative-test')
    expect(demo.output()).toContain(`data in ${folder} (SQLite)`)
    demo.kill('SIGKILL')
    await new Promise((resolve) => demo.once('exit', resolve))
    const { rmSync } = await import('node:fs')
    rmSync(folder, { recursive: true, force: true })
  }, 30_000)
})
