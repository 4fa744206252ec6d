/**
 * The getting-started app on real Bun: Elysia with zuno-elysia, and the page Bun bundles from
 * index.html, in production (`pnpm start`) and development (`pnpm dev`) mode.
 */
import { existsSync } from 'node:fs'
import { EventSource } from 'eventsource'
import { chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { until } from '../../../packages/zuno/test/support/until'
import { app } from '../src/app'
import { type BunServer, haveBun, startBunServer } from './bunServer'

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveChromium = existsSync(chromiumPath)
if (!haveChromium && process.env.CI) throw new Error(`Chromium is required in CI and missing at ${chromiumPath} (apt-get install -y chromium)`)

describe.skipIf(!haveBun)('the app on Bun', () => {
  describe('round trip through the server (production mode)', () => {
    let server: BunServer
    beforeAll(async () => {
      server = await startBunServer(true)
    })
    afterAll(() => server?.stop())

    it('streams a POSTed write to an EventSource, and answers a stale write with 409 and the current state', async () => {
      const source = new EventSource(`${server.url}/zuno/sse`)
      const events: string[] = []
      source.addEventListener('state', (event) => events.push(event.data))
      try {
        await new Promise<void>((resolve, reject) => {
          source.addEventListener('snapshot', () => resolve(), { once: true })
          source.onerror = () => reject(new Error('the stream failed'))
        })
        const { cursor, stores } = (await (await fetch(`${server.url}/zuno/state`)).json()) as { cursor: string; stores: { counter: { version: number } } }
        const proposal = {
          storeKey: 'counter',
          baseVersion: stores.counter.version,
          epoch: cursor.slice(0, cursor.lastIndexOf('-')),
          state: 7,
          clientId: 'AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB',
          opId: 1,
        }
        const post = (body: object) =>
          fetch(`${server.url}/zuno/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        const accepted = await post(proposal)
        expect(accepted.status).toBe(200)
        expect(await accepted.json()).toMatchObject({ ok: true, storeKey: 'counter', version: stores.counter.version + 1, state: 7 })
        await until(() => events.length > 0, 2000)
        expect(JSON.parse(events[0] as string)).toMatchObject({ storeKey: 'counter', version: stores.counter.version + 1, state: 7 })

        const stale = await post({ ...proposal, state: 8, opId: 2 })
        expect(stale.status).toBe(409)
        expect(await stale.json()).toMatchObject({ ok: false, error: 'conflict', version: stores.counter.version + 1, state: 7 })
      } finally {
        source.close()
      }
    })

    it('keeps two Node replicas of the app in sync', async () => {
      const a = connect({ app, url: `${server.url}/zuno`, EventSource, tabs: false })
      const b = connect({ app, url: `${server.url}/zuno`, EventSource, tabs: false })
      try {
        await until(() => a.status.get() === 'connected' && b.status.get() === 'connected')
        await a.store('todos').set((todos) => [...todos, { id: '1', text: 'from a' }])
        await until(() => b.store('todos').get().length === 1)
        expect(b.store('todos').get()).toEqual([{ id: '1', text: 'from a' }])
      } finally {
        a.close()
        b.close()
      }
    })

    it('exits with 0 on SIGTERM while a stream is open', async () => {
      const stream = await fetch(`${server.url}/zuno/sse`)
      expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
      expect(await server.stop('SIGTERM')).toBe(0)
      await stream.body?.cancel().catch(() => {})
      expect(server.errors()).toBe('')
    })
  })

  describe.skipIf(!haveChromium).each([
    ['production (pnpm start)', true],
    ['development (pnpm dev)', false],
  ])('the page in Chromium, %s', (_mode, production) => {
    let server: BunServer
    beforeAll(async () => {
      server = await startBunServer(production)
    })
    afterAll(() => server?.stop())

    it('shows a change made in one page in another', async () => {
      const browser = await chromium.launch({
        executablePath: chromiumPath,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      })
      try {
        const errors: string[] = []
        const open = async (): Promise<Page> => {
          const page = await (await browser.newContext()).newPage()
          page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
          page.on('console', (message) => {
            if (message.type() === 'error') errors.push(`console: ${message.text()}`)
          })
          await page.goto(server.url)
          await page.waitForSelector('[data-testid="status"]:text-is("connected")')
          return page
        }
        const [a, b] = [await open(), await open()]
        const before = Number(await a.locator('[data-testid="counter"]').textContent())
        await a.click('[data-testid="increment"]')
        await a.click('[data-testid="increment"]')
        await b.waitForFunction((expected) => document.querySelector('[data-testid="counter"]')?.textContent === String(expected), before + 2)
        expect(errors).toEqual([])
      } finally {
        await browser.close()
      }
    })
  })
})
