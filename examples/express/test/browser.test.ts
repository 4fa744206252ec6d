/**
 * End to end in real headless Chromium (Debian's, driven by playwright-core) against the demo:
 * real BroadcastChannel, real Web Locks, real EventSource, HTTP/1.1.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { until } from '../../../packages/zuno/test/support/until'
import { type DemoServer, startDemo } from '../src/demoServer'
import { haveChromium, launchChromium } from './support/chromium'

const bundle = fileURLToPath(new URL('../dist/app.js', import.meta.url))

let browser: Browser
let demo: DemoServer
const contexts: BrowserContext[] = []

const counterOf = (page: Page) => page.locator('[data-testid="counter-value"]')
const connected = (page: Page) => page.waitForSelector('[data-testid="connection-status"][data-status="connected"]')
const shows = async (page: Page, value: number) => {
  await page.waitForFunction(
    (expected) => document.querySelector('[data-testid="counter-value"]')?.textContent === String(expected),
    value,
    { timeout: 15_000 },
  )
}

async function tabs(count: number, context?: BrowserContext): Promise<Page[]> {
  const ctx = context ?? (await browser.newContext())
  if (context === undefined) contexts.push(ctx)
  const pages: Page[] = []
  for (let i = 0; i < count; i++) {
    const page = await ctx.newPage()
    await page.goto(demo.url)
    pages.push(page)
  }
  await Promise.all(pages.map(connected))
  return pages
}

describe.skipIf(!haveChromium)('the demo in Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(bundle)) throw new Error('dist/app.js is missing: run `pnpm build` first')
    browser = await launchChromium()
  })
  afterAll(() => browser?.close())
  beforeEach(async () => {
    demo = await startDemo(0)
  })
  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close()
    await demo.close()
  })

  it('keeps two tabs in sync', async () => {
    const [a, b] = (await tabs(2)) as [Page, Page]
    for (let i = 0; i < 3; i++) await a.click('[data-testid="counter-increment"]')
    await shows(b, 3)
    await b.fill('input[name=text]', 'buy milk')
    await b.click('button[type=submit]')
    await a.waitForSelector('[data-testid="todo-list"] li:has-text("buy milk")')
  })

  it('loads and syncs eight tabs of one browser over one stream', async () => {
    const pages = await tabs(8)
    await until(() => demo.streams() === 1) // the leader tab's; the 6-connections-per-origin limit is never near
    await pages[0]?.click('[data-testid="counter-increment"]')
    await Promise.all(pages.map((page) => shows(page, 1)))
    await pages[7]?.click('[data-testid="counter-increment"]')
    await Promise.all(pages.map((page) => shows(page, 2)))
    expect(demo.universe.store('counter').get()).toBe(2)
    expect(demo.streams()).toBe(1)
  })

  it('syncs two browsers (contexts) through the server', async () => {
    const [a] = (await tabs(1)) as [Page]
    const [b] = (await tabs(1)) as [Page]
    await a.click('[data-testid="counter-increment"]')
    await shows(b, 1)
    await b.click('[data-testid="counter-increment"]')
    await shows(a, 2)
    expect(demo.streams()).toBe(2)
  })

  it('shows a click made offline at once, in the sibling tab too, and delivers it once back online', async () => {
    const context = await browser.newContext()
    contexts.push(context)
    const [a, b] = (await tabs(2, context)) as [Page, Page]
    await context.setOffline(true)
    await a.click('[data-testid="counter-increment"]')
    await expect(counterOf(a).textContent()).resolves.toBe('1')
    await shows(b, 1) // through BroadcastChannel, with no network
    await a.waitForSelector('[data-testid="pending-count"][data-pending="1"]')
    expect(demo.universe.store('counter').get()).toBe(0)
    await context.setOffline(false)
    await until(() => demo.universe.store('counter').get() === 1, 30_000)
    await a.waitForSelector('[data-testid="pending-count"][data-pending="0"]', { timeout: 30_000 })
    await shows(b, 1)
    expect(demo.universe.store('counter').version).toBe(1)
  })

  it('carries on when the leader tab closes mid-stream', async () => {
    const [leader, b, c] = (await tabs(3)) as [Page, Page, Page]
    await until(() => demo.streams() === 1)
    await leader.close()
    // A write while no tab holds the stream: the next leader must resume from its last event id.
    await demo.universe.store('counter').set(10)
    await Promise.all([shows(b, 10), shows(c, 10)])
    await until(() => demo.streams() === 1)
    await c.click('[data-testid="counter-increment"]')
    await Promise.all([shows(b, 11), shows(c, 11)])
    expect(demo.universe.store('counter').get()).toBe(11)
  })

  it('keeps clicks that could not be sent across a reload, and applies each once', async () => {
    const context = await browser.newContext()
    contexts.push(context)
    const [a, b] = (await tabs(2, context)) as [Page, Page]
    // The page still loads; only proposals fail, as when the API is down.
    await context.route('**/zuno/sync', (route) => route.abort('connectionrefused'))
    await a.click('[data-testid="counter-increment"]')
    await a.click('[data-testid="counter-increment"]')
    await a.waitForSelector('[data-testid="pending-count"][data-pending="2"]')
    // Both clicks are in IndexedDB before the reload.
    await a.waitForFunction(
      () =>
        new Promise((resolve) => {
          const open = indexedDB.open('zuno-demo')
          open.onsuccess = () => {
            const count = open.result.transaction('ops').objectStore('ops').count()
            count.onsuccess = () => resolve(count.result === 2)
          }
        }),
    )
    await a.reload()
    await connected(a)
    expect(demo.universe.store('counter').get()).toBe(0)
    await context.unroute('**/zuno/sync')
    await until(() => demo.universe.store('counter').get() === 2, 30_000)
    await Promise.all([shows(a, 2), shows(b, 2)])
    expect(demo.universe.store('counter').version).toBe(2)
  })

  it('counts all of 40 concurrent clicks from two browsers', async () => {
    const [a] = (await tabs(1)) as [Page]
    const [b] = (await tabs(1)) as [Page]
    const burst = (page: Page) =>
      page.evaluate(() => {
        const button = document.querySelector<HTMLButtonElement>('[data-testid="counter-increment"]')
        for (let i = 0; i < 20; i++) button?.click()
      })
    await Promise.all([burst(a), burst(b)])
    await until(() => demo.universe.store('counter').get() === 40, 30_000)
    await Promise.all([shows(a, 40), shows(b, 40)])
    expect(demo.universe.store('counter').version).toBe(40)
    // +1 is an action, which the server runs on its own state: the race made no conflict to list.
    for (const page of [a, b]) expect(await page.$$('[data-testid="conflicts"] li')).toHaveLength(0)
  })

  it('merges two browsers ticking two different todos at once: every tick lands, none conflicts', async () => {
    const [a] = (await tabs(1)) as [Page]
    const [b] = (await tabs(1)) as [Page]
    for (const text of ['first', 'second']) {
      await a.fill('[data-testid="todo-form"] input', text)
      await a.click('[data-testid="todo-form"] button')
    }
    await until(() => demo.universe.store('todos').get().length === 2, 10_000)
    await b.waitForFunction(() => document.querySelectorAll('[data-testid="todo-list"] input[type="checkbox"]').length === 2)
    const burst = (page: Page, index: number) =>
      page.evaluate((at) => {
        const box = document.querySelectorAll<HTMLInputElement>('[data-testid="todo-list"] input[type="checkbox"]')[at]
        for (let i = 0; i < 9; i++) box?.click()
      }, index)
    // Each browser proposes its ticks on the version it holds, stale once the other's land: merged.
    await Promise.all([burst(a, 0), burst(b, 1)])
    await until(() => demo.universe.store('todos').version === 2 + 18, 30_000)
    expect(demo.universe.store('todos').get().map((todo) => todo.done)).toEqual([true, true])
    for (const page of [a, b]) {
      await page.waitForFunction(() => [...document.querySelectorAll<HTMLInputElement>('[data-testid="todo-list"] input[type="checkbox"]')].every((box) => box.checked))
      expect(await page.$$('[data-testid="conflicts"] li')).toHaveLength(0)
    }
  })

  it('lists the conflicts of two browsers ticking one todo at once (a plain set), and both end on the server\'s state', async () => {
    const [a] = (await tabs(1)) as [Page]
    const [b] = (await tabs(1)) as [Page]
    await a.fill('[data-testid="todo-form"] input', 'contended')
    await a.click('[data-testid="todo-form"] button')
    await until(() => demo.universe.store('todos').get().length === 1, 10_000)
    await b.waitForSelector('[data-testid="todo-list"] input[type="checkbox"]')
    const burst = (page: Page) =>
      page.evaluate(() => {
        const box = document.querySelector<HTMLInputElement>('[data-testid="todo-list"] input[type="checkbox"]')
        for (let i = 0; i < 10; i++) box?.click()
      })
    await Promise.all([burst(a), burst(b)])
    // The two browsers raced on the list's version: some proposals met a 409 and were rebased, and the page lists them.
    await Promise.any([a, b].map((page) => page.waitForSelector('[data-testid="conflicts"] li', { timeout: 10_000 })))
    await until(() => demo.universe.store('todos').version === 21, 30_000)
    const done = demo.universe.store('todos').get()[0]?.done
    for (const page of [a, b]) await page.waitForFunction((expected) => document.querySelector<HTMLInputElement>('[data-testid="todo-list"] input[type="checkbox"]')?.checked === expected, done)
  })
})
