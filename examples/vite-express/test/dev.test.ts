/**
 * Development: Vite's dev server (`createServer()`) in front, its `server.proxy` from the example's
 * vite.config.ts sending `/api` and `/zuno` to the Express server. The stream must come through the
 * proxy as it is written, not buffered, and writes must go through it too.
 */
import { EventSource } from 'eventsource'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../../../packages/zuno/test/support/until'
import { errorsOf, haveChromium, launch, openApp, showsCount } from './support/browser'
import { type RunningApi, type RunningDev, startApi, startDev } from './support/servers'

let api: RunningApi
let dev: RunningDev

beforeAll(async () => {
  api = await startApi()
  dev = await startDev(api.url)
}, 60_000)
afterAll(async () => {
  await dev?.close()
  await api?.close()
})

/** Writes `state` to `storeKey` with a raw POST through the dev server, based on the server's current version. */
async function post(storeKey: 'counter', state: number, opId: number, clientId: string) {
  const current = (await (await fetch(`${dev.url}/zuno/state`)).json()) as { cursor: string; stores: Record<string, { version: number }> }
  const body = {
    storeKey,
    baseVersion: current.stores[storeKey]?.version ?? 0,
    epoch: current.cursor.slice(0, current.cursor.lastIndexOf('-')),
    state,
    clientId,
    opId,
  }
  return fetch(`${dev.url}/zuno/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

describe("Vite's dev server proxying to Express", () => {
  it("answers the app's own API route through the proxy", async () => {
    const response = await fetch(`${dev.url}/api/hello`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ message: 'Hello from Express' })
  })

  it('streams an event through the proxy within 2 s of a POST through the same port', async () => {
    const source = new EventSource(`${dev.url}/zuno/sse`)
    const events: { data: string; at: number }[] = []
    source.addEventListener('state', (event) => events.push({ data: event.data, at: Date.now() }))
    try {
      await new Promise<void>((resolve, reject) => {
        source.addEventListener('snapshot', () => resolve(), { once: true })
        source.onerror = () => reject(new Error('the stream failed through the proxy'))
      })
      expect(api.sync.server.streams).toBe(1)

      const sent = Date.now()
      const response = await post('counter', 41, 1, 'AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB')
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({ ok: true, storeKey: 'counter', state: 41 })
      await until(() => events.length > 0, 2000)
      const [first] = events as [{ data: string; at: number }]
      expect(first.at - sent).toBeLessThan(2000)
      expect(JSON.parse(first.data)).toMatchObject({ storeKey: 'counter', state: 41 })
    } finally {
      source.close()
    }
    // The proxy ends the upstream request when its client leaves, so Express lets the stream go.
    await until(() => api.sync.server.streams === 0, 5000)
  })

  it('passes a conflict through: a stale baseVersion gets 409 with the current state', async () => {
    const current = (await (await fetch(`${dev.url}/zuno/state`)).json()) as { cursor: string; stores: { counter: { version: number; state: number } } }
    const response = await fetch(`${dev.url}/zuno/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        storeKey: 'counter',
        baseVersion: current.stores.counter.version + 5,
        epoch: current.cursor.slice(0, current.cursor.lastIndexOf('-')),
        state: 0,
        clientId: 'CCCCCCCCCCCCCCCC.DDDDDDDDDDDDDDDDDDDDDD',
        opId: 1,
      }),
    })
    expect(response.status).toBe(409)
    expect(await response.json()).toMatchObject({ ok: false, error: 'conflict', version: current.stores.counter.version, state: current.stores.counter.state })
  })
})

describe.skipIf(!haveChromium)('a page served by the dev server in Chromium', () => {
  let browser: Browser
  beforeAll(async () => {
    browser = await launch()
  })
  afterAll(() => browser?.close())

  it('connects through the proxy, writes through it and shows what others write', async () => {
    const page = await browser.newPage()
    const errors = errorsOf(page)
    await openApp(page, dev.url)
    await page.waitForSelector('[data-testid="hello"]:text-is("Hello from Express")')
    const before = api.universe.store('counter').get()
    await showsCount(page, before)

    await page.click('[data-testid="increment"]')
    await until(() => api.universe.store('counter').get() === before + 1)

    const response = await post('counter', 100, 1, 'EEEEEEEEEEEEEEEE.FFFFFFFFFFFFFFFFFFFFFF')
    expect(response.status).toBe(200)
    await showsCount(page, 100)
    expect(errors).toEqual([])
    await page.close()
  })
})
