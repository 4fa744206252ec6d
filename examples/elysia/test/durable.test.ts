/**
 * The Bun demo keeps its state in ZUNO_DATA_DIR (SQLite, on bun:sqlite), declares the same schemas as
 * the Express demo, and renders a folder holding an invalid state. A real Bun process each time.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { type BunDemo, haveBun, startBunDemo } from './bunDemo'
import { epochOf, rawProposal } from '../../../packages/zuno/test/support/rawProposal'
import { writeUncheckedTodos } from '../../express/test/support/uncheckedState'

const folders: string[] = []
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'zuno-bun-durable-'))
  folders.push(dir)
  return dir
}
const running: BunDemo[] = []
const start = async (dir: string, port?: number) => {
  const demo = await startBunDemo(port ?? (await freePort()), dir)
  running.push(demo)
  return demo
}
afterEach(async () => {
  for (const demo of running.splice(0)) await demo.stop()
})
afterAll(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true })
})

/** A raw proposal, each the first op of a fresh client. */
const propose = async (url: string, body: Record<string, unknown>) =>
  fetch(`${url}/zuno/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: rawProposal(await epochOf(`${url}/zuno`), body),
  })

type State = { stores: { counter: { version: number; state: number }; todos: { version: number; state: unknown } } }
const stateOf = async (url: string) => (await (await fetch(`${url}/zuno/state`)).json()) as State

describe.skipIf(!haveBun)('the Bun demo’s state', () => {
  it('survives a restart of the Bun process on the same ZUNO_DATA_DIR, and says where it is kept', async () => {
    const dir = dataDir()
    const first = await start(dir)
    expect(first.banner).toContain(`data in ${dir} (SQLite)`) // bun:sqlite, the demo's default
    expect((await propose(first.url, { storeKey: 'counter', baseVersion: 0, state: 7 })).status).toBe(200)
    const todos = [{ id: 'a', text: 'kept on disk', done: true }]
    expect((await propose(first.url, { storeKey: 'todos', baseVersion: 0, state: todos })).status).toBe(200)
    await first.stop('SIGTERM') // the graceful path; each acknowledgement is committed to SQLite anyway
    expect(first.child.exitCode).toBe(0)

    const second = await start(dir)
    const { stores } = await stateOf(second.url)
    expect(stores.counter).toEqual({ version: 1, state: 7 })
    expect(stores.todos).toEqual({ version: 1, state: todos })
    const html = await (await fetch(`${second.url}/`)).text()
    expect(html).toMatch(/data-testid="counter-value">7</)
    expect(html).toContain('kept on disk')

    // Versions continue after the restart, and a hard kill loses nothing acknowledged either.
    expect((await propose(second.url, { storeKey: 'counter', baseVersion: 1, state: 8 })).status).toBe(200)
    await second.stop('SIGKILL')
    const third = await start(dir)
    expect((await stateOf(third.url)).stores.counter).toEqual({ version: 2, state: 8 })
  })

  it('refuses states its schemas reject with 422 invalid_state', async () => {
    const demo = await start(dataDir())
    for (const [storeKey, state] of [['todos', 'pwned'], ['counter', 'x']] as const) {
      const response = await propose(demo.url, { storeKey, baseVersion: 0, state })
      expect(response.status).toBe(422)
      expect(await response.json()).toMatchObject({ ok: false, error: 'invalid_state' })
    }
    expect((await fetch(`${demo.url}/`)).status).toBe(200)
  })

  it('renders a folder that holds an invalid todos state with the initial todos, without a stack trace, and logs it', async () => {
    const dir = dataDir()
    await writeUncheckedTodos(dir, 'pwned')

    const demo = await start(dir)
    const page = await fetch(`${demo.url}/`)
    const html = await page.text()
    expect(html).not.toMatch(/(^\s*|&nbsp;)at |\/(work|tmp|home|src|node_modules)\//m)
    expect(page.status).toBe(200)
    expect(html).toContain('"todos":{"version":1,"state":[]}')
    expect(demo.errors()).toContain('the stored state of "todos" (v1) fails its schema')
  })
})
