/**
 * The demo declares what its stores may hold: an anonymous client cannot store a state that would
 * break the page, and a page that cannot render answers a short plain page, never a stack trace.
 * Real servers on 127.0.0.1, real fetch, the demo's real storage (SQLite) in a temporary folder.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createUniverse } from 'zuno/server'
import { type DemoServer, demoStores, startDemo } from '../src/demoServer'
import { renderDemoPage } from '../src/render'
import { embeddedStorage } from '../src/storage'
import { epochOf, rawProposal } from '../../../packages/zuno/test/support/rawProposal'
import { writeUncheckedTodos } from './support/uncheckedState'

const folders: string[] = []
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'zuno-schemas-'))
  folders.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true })
})

const running: DemoServer[] = []
const start = async (dir: string) => {
  const demo = await startDemo(0, '127.0.0.1', (await embeddedStorage(dir)).storage)
  running.push(demo)
  return demo
}
const stop = async (demo: DemoServer) => {
  running.splice(running.indexOf(demo), 1)
  await demo.close()
}
afterEach(async () => {
  for (const demo of running.splice(0)) await demo.close()
})

/** A raw proposal, each the first op of a fresh client. */
const propose = async (demo: DemoServer, body: Record<string, unknown>) =>
  fetch(`${demo.url}/zuno/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: rawProposal(await epochOf(`${demo.url}/zuno`), body),
  })

/** A page that gives nothing away: no stack frames, no file paths. */
const expectNoInternals = (html: string) => {
  expect(html).not.toMatch(/(^\s*|&nbsp;)at /m)
  expect(html).not.toMatch(/\/(work|tmp|home|root|src|node_modules)\//)
  expect(html).not.toMatch(/\.(ts|tsx|js|mjs):\d+/)
}

let errors: ReturnType<typeof vi.spyOn>
beforeEach(() => {
  // The server logs what went wrong; the tests read it here instead of on the terminal.
  errors = vi.spyOn(console, 'error').mockImplementation(() => {})
})
afterEach(() => {
  errors.mockRestore()
})

describe('the demo’s schemas', () => {
  it('refuses a todos state that is not a todo list with 422 invalid_state, and the page still renders, across a restart', async () => {
    const dir = dataDir()
    const demo = await start(dir)
    const response = await propose(demo, { storeKey: 'todos', baseVersion: 0, state: 'pwned' })
    expect(response.status).toBe(422)
    expect(response.headers.get('content-type')).toMatch(/application\/json/)
    expect(await response.json()).toMatchObject({ ok: false, error: 'invalid_state' })

    const page = await fetch(`${demo.url}/`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('data-testid="todo-list"')

    await stop(demo)
    const again = await start(dir)
    const after = await fetch(`${again.url}/`)
    expect(after.status).toBe(200)
    expect(await after.text()).toMatch(/window.__ZUNO__ = {"stores":{"counter":{"version":0,"state":0},"todos":{"version":0,"state":\[\]}}/)
  })

  it('refuses a counter that is not a whole number, and todos with other fields or too long a text', async () => {
    const demo = await start(dataDir())
    for (const state of ['x', 1.5, -1, null]) {
      const response = await propose(demo, { storeKey: 'counter', baseVersion: 0, state })
      expect(response.status, JSON.stringify(state)).toBe(422)
      expect(((await response.json()) as { error: string }).error).toBe('invalid_state')
    }
    const todo = { id: 'a', text: 'buy milk', done: false }
    for (const state of [[{ ...todo, html: '<script>' }], [{ ...todo, text: 'x'.repeat(201) }], [{ id: 'a', text: 'no done' }]]) {
      const response = await propose(demo, { storeKey: 'todos', baseVersion: 0, state })
      expect(response.status, JSON.stringify(state).slice(0, 80)).toBe(422)
    }
    const accepted = await propose(demo, { storeKey: 'todos', baseVersion: 0, state: [todo] })
    expect(accepted.status).toBe(200)
    expect((await fetch(`${demo.url}/`)).status).toBe(200)
  })

  it('renders a data folder that holds an invalid todos state with the initial todos, logs it, and lets the next write replace it', async () => {
    // A data folder written without schemas, as an older version of the demo did.
    const dir = dataDir()
    await writeUncheckedTodos(dir, 'pwned')

    const demo = await start(dir)
    const page = await fetch(`${demo.url}/`)
    const html = await page.text()
    expectNoInternals(html)
    expect(page.status).toBe(200)
    expect(html).toContain('data-testid="todo-list"')
    expect(html).toContain('"todos":{"version":1,"state":[]}')
    expect(html).not.toContain('pwned')
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('"todos" (v1) fails its schema'), expect.anything())

    // The page's next write, on the version it was given, replaces the bad state.
    const healed = await propose(demo, { storeKey: 'todos', baseVersion: 1, state: [{ id: 'a', text: 'fresh start', done: false }] })
    expect(healed.status).toBe(200)
    expect(await (await fetch(`${demo.url}/`)).text()).toContain('fresh start')
  })

  it('answers a short plain 500 page, with no stack and no message, when the page cannot be rendered, and logs why', async () => {
    // Storage that cannot load (its folder is a file): the universe never becomes ready.
    const notAFolder = join(dataDir(), 'not-a-folder')
    writeFileSync(notAFolder, 'x')
    const universe = createUniverse({ stores: demoStores, storage: (await embeddedStorage(notAFolder)).storage })
    await expect(universe.ready).rejects.toThrow()

    const { status, html } = await renderDemoPage(universe)
    expect(status).toBe(500)
    expectNoInternals(html)
    expect(html).not.toMatch(/loading|unavailable|EEXIST|ENOTDIR|Error/)
    expect(html.length).toBeLessThan(1000)
    expect(errors).toHaveBeenCalledWith('zuno demo: rendering the page failed', expect.objectContaining({ code: 'unavailable' }))
  })
})
