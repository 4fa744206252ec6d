/**
 * Production: the client built by Vite (`build()`), served by the app's Express server beside its
 * own API and Zuno, in real headless Chromium.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newClientId, type StateResponse } from 'zuno'
import { errorsOf, haveChromium, launch, openApp, showsCount } from './support/browser'
import { buildClient, type RunningApi, startApi } from './support/servers'

const dist = mkdtempSync(join(tmpdir(), 'zuno-vite-express-dist-'))
let api: RunningApi
let browser: Browser | undefined

beforeAll(async () => {
  await buildClient(dist)
  api = await startApi(dist)
}, 60_000)
afterAll(async () => {
  await browser?.close()
  await api?.close()
  rmSync(dist, { recursive: true, force: true })
})

describe('the app built by Vite and served by Express', () => {
  it('builds an index.html that loads the bundle, and Express serves both', async () => {
    expect(existsSync(join(dist, 'index.html'))).toBe(true)
    const script = /<script type="module" crossorigin src="(\/assets\/[^"]+\.js)">/.exec(readFileSync(join(dist, 'index.html'), 'utf8'))?.[1]
    expect(script).toBeDefined()
    const page = await fetch(`${api.url}/`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<div id="root"></div>')
    const bundle = await fetch(`${api.url}${script}`)
    expect(bundle.status).toBe(200)
    expect(bundle.headers.get('content-type')).toMatch(/javascript/)
    expect(bundle.headers.get('content-encoding')).toBe('gzip')
  })

  it('compresses the app but leaves the stream alone', async () => {
    const stream = await fetch(`${api.url}/zuno/sse`, { headers: { 'accept-encoding': 'gzip' } })
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(stream.headers.get('content-encoding')).toBeNull()
    await stream.body?.cancel()
  })

  it("still answers the app's own API route", async () => {
    const response = await fetch(`${api.url}/api/hello`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ message: 'Hello from Express' })
  })

  it('serves the app definition: both stores at their initial states', async () => {
    const state = (await (await fetch(`${api.url}/zuno/state`)).json()) as { stores: Record<string, { state: unknown }> }
    expect(state.stores.counter?.state).toBe(0)
    expect(state.stores.todos?.state).toEqual([])
  })

  it("accepts a 200 KB write, over express.json()'s 100 KB limit and under Zuno's 1 MiB", async () => {
    // A server of its own, so the other tests still see the initial states.
    const fresh = await startApi()
    try {
      const { stores, cursor } = (await (await fetch(`${fresh.url}/zuno/state`)).json()) as StateResponse
      const todos = Array.from({ length: 2000 }, (_, i) => ({ id: String(i), text: 'x'.repeat(80) }))
      const proposal = { storeKey: 'todos', baseVersion: stores.todos?.version, epoch: cursor.slice(0, cursor.lastIndexOf('-')), state: todos, clientId: newClientId(), opId: 1 }
      const body = JSON.stringify(proposal)
      expect(body.length).toBeGreaterThan(200_000)
      const response = await fetch(`${fresh.url}/zuno/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      expect({ status: response.status, body: await response.json() }).toMatchObject({ status: 200, body: { ok: true } })
      expect(fresh.universe.store('todos').get()).toEqual(todos)
    } finally {
      await fresh.close()
    }
  })
})

describe.skipIf(!haveChromium)('the built app in Chromium', () => {
  beforeAll(async () => {
    browser = await launch()
  })

  it('shows a change made in one page in another, each in its own browser context', async () => {
    const contexts = [await (browser as Browser).newContext(), await (browser as Browser).newContext()]
    const [a, b] = (await Promise.all(contexts.map((context) => context.newPage()))) as [Page, Page]
    const errors = [a, b].map(errorsOf)
    await openApp(a, api.url)
    await openApp(b, api.url)
    await a.waitForSelector('[data-testid="hello"]:text-is("Hello from Express")')

    const before = api.universe.store('counter').get()
    await a.click('[data-testid="increment"]')
    await a.click('[data-testid="increment"]')
    await showsCount(b, before + 2)
    await b.fill('input[name=text]', 'buy milk')
    await b.click('button[type=submit]')
    await a.waitForSelector('[data-testid="todos"] li:text-is("buy milk")')

    expect(api.universe.store('counter').get()).toBe(before + 2)
    expect(api.universe.store('todos').get().map((todo) => todo.text)).toEqual(['buy milk'])
    expect(errors.flat()).toEqual([])
    for (const context of contexts) await context.close()
  })
})
