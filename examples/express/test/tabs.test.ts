/**
 * Tabs of one browser in real headless Chromium against a real server: a tab says `connected`
 * only once it shows the server's data, and tabs that follow different stores each get theirs.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { until } from '../../../packages/zuno/test/support/until'
import { haveChromium, launchChromium } from './support/chromium'
import { startTabServer, type TabServer } from './support/tabServer'

const stores = { 'doc.1': { title: 'one' }, 'doc.2': { title: 'two' } }

let browser: Browser
let server: TabServer
let context: BrowserContext
let errors: string[]

/** Opens a tab on the test page and fails the test on any page error or console error in it. */
async function tab(query: string): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`)
  })
  await page.goto(`${server.url}/?${query}`)
  await page.waitForFunction(() => 'zuno' in window)
  return page
}

const statusOf = (page: Page) => page.evaluate(() => (window as unknown as { zuno: { status: { get(): string } } }).zuno.status.get())
const shown = (page: Page) => page.evaluate(() => (window as unknown as { shown(): Record<string, unknown> }).shown())
/** Every status the tab reported, with what its stores showed at that moment. */
const statuses = (page: Page) =>
  page.evaluate(() => (window as unknown as { statuses: { status: string; stores: Record<string, unknown> }[] }).statuses)
const connected = (page: Page) => until(async () => (await statusOf(page)) === 'connected', 15_000)

describe.skipIf(!haveChromium)('tabs in Chromium', () => {
  beforeAll(async () => {
    browser = await launchChromium()
  })
  afterAll(() => browser?.close())
  beforeEach(async () => {
    errors = []
    server = await startTabServer(stores)
    context = await browser.newContext()
  })
  afterEach(async () => {
    await context.close()
    await server.close()
    expect(errors).toEqual([])
  })

  it('shows data in a new tab that joins while the leader is not yet synced, before it says connected', async () => {
    await server.universe.store('doc.1').set({ title: 'one, edited' })
    server.hold()
    // The leader starts from hydration, then waits on its stream: it is not synced.
    const leader = await tab('stores=doc.1&hydrate=1')
    await until(() => server.streamRequests() === 1, 15_000)
    const follower = await tab('stores=doc.1')
    // The follower's hello reached the leader while it was not synced; now the leader resumes.
    server.open()
    await connected(leader)
    await connected(follower)
    expect(await shown(follower)).toEqual({ 'doc.1': { title: 'one, edited' } })
    for (const { status, stores: seen } of await statuses(follower)) {
      if (status === 'connected') expect(seen).toEqual({ 'doc.1': { title: 'one, edited' } })
    }
    await server.universe.store('doc.1').set({ title: 'one, again' })
    await until(async () => JSON.stringify(await shown(follower)) === JSON.stringify({ 'doc.1': { title: 'one, again' } }), 15_000)
  })

  it('gives each of two tabs with different store filters its own stores, including after edits', async () => {
    const one = await tab('stores=doc.1')
    await connected(one)
    const two = await tab('stores=doc.2')
    await connected(two)
    await until(async () => JSON.stringify(await shown(two)) === JSON.stringify({ 'doc.2': { title: 'two' } }), 15_000)
    await server.universe.store('doc.2').set({ title: 'two, edited' })
    await server.universe.store('doc.1').set({ title: 'one, edited' })
    await until(async () => JSON.stringify(await shown(two)) === JSON.stringify({ 'doc.2': { title: 'two, edited' } }), 15_000)
    await until(async () => JSON.stringify(await shown(one)) === JSON.stringify({ 'doc.1': { title: 'one, edited' } }), 15_000)
    // A write from the tab that follows doc.2 reaches the server and stays in that tab.
    await two.evaluate(() => (window as unknown as { zuno: { store(key: string): { set(v: unknown): Promise<number> } } }).zuno.store('doc.2').set({ title: 'two, from the tab' }))
    expect(server.universe.store('doc.2').get()).toEqual({ title: 'two, from the tab' })
    expect(await shown(two)).toEqual({ 'doc.2': { title: 'two, from the tab' } })
  })
  it('shares one stream between tabs that follow the same stores in another order, and not with other filters', async () => {
    const both = await tab('stores=doc.2,doc.1')
    const same = await tab('stores=doc.1,doc.2,doc.1')
    await Promise.all([connected(both), connected(same)])
    await until(() => server.streams() === 1, 15_000)
    const one = await tab('stores=doc.1')
    await connected(one)
    await until(() => server.streams() === 2, 15_000)
    await server.universe.store('doc.2').set({ title: 'two, edited' })
    await until(async () => JSON.stringify((await shown(same))['doc.2']) === JSON.stringify({ title: 'two, edited' }), 15_000)
    expect(server.streams()).toBe(2)
  })

  describe('documents followed at runtime', () => {
    /** Follows `key` in the tab and waits until it shows `value`. */
    async function open(page: Page, key: string, value: unknown): Promise<void> {
      await page.evaluate((storeKey) => (window as unknown as { zuno: { follow(key: string): void } }).zuno.follow(storeKey), key)
      await page.waitForFunction(
        ([storeKey, expected]) => JSON.stringify((window as unknown as { zuno: { store(key: string): { get(): unknown } } }).zuno.store(storeKey as string).get()) === expected,
        [key, JSON.stringify(value)] as const,
        { timeout: 15_000 },
      )
    }

    it('opens twenty documents one after another over the one stream it has, and each stays live', async () => {
      for (let i = 0; i < 20; i++) await server.universe.store(`room:${i}`, { n: 0 }).set({ n: i })
      const page = await tab('stores=doc.1')
      await connected(page)
      for (let i = 0; i < 20; i++) await open(page, `room:${i}`, { n: i })
      await server.universe.store('room:7').set({ n: 77 })
      await page.waitForFunction(() => (window as unknown as { zuno: { store(key: string): { get(): { n: number } } } }).zuno.store('room:7').get().n === 77, undefined, { timeout: 15_000 })
      // Counted on the server: one stream, opened once.
      expect(server.streamRequests()).toBe(1)
      expect(server.streams()).toBe(1)
    })

    it('follows what each tab opens through the leader’s stream: three tabs, one stream', async () => {
      for (let i = 0; i < 6; i++) await server.universe.store(`room:${i}`, { n: 0 }).set({ n: i })
      const pages: Page[] = []
      for (let i = 0; i < 3; i++) {
        const page = await tab('stores=doc.1')
        await connected(page)
        pages.push(page)
      }
      for (const [i, page] of pages.entries()) {
        await open(page, `room:${2 * i}`, { n: 2 * i })
        await open(page, `room:${2 * i + 1}`, { n: 2 * i + 1 })
      }
      await server.universe.store('room:5').set({ n: 55 })
      await (pages[2] as Page).waitForFunction(() => (window as unknown as { zuno: { store(key: string): { get(): { n: number } } } }).zuno.store('room:5').get().n === 55, undefined, { timeout: 15_000 })
      expect(server.streams()).toBe(1)
    })
  })
})
