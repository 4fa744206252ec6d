/**
 * Presence in the demo, end to end in real headless Chromium against the real demo server: two
 * browsers (contexts) see each other join the "Online" list, see each other's cursor over the
 * todo list where the mouse moved, and see each other leave; a closed tab leaves at once; eight
 * tabs of one browser are eight presences over one SSE stream.
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
let errors: string[]
const contexts: BrowserContext[] = []

/** A new browser (context) with `count` tabs on the demo, each connected and showing itself online; page errors fail the test. */
async function browserWithTabs(count: number): Promise<{ context: BrowserContext; pages: Page[] }> {
  const context = await browser.newContext()
  contexts.push(context)
  const pages: Page[] = []
  for (let i = 0; i < count; i++) {
    const page = await context.newPage()
    page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console: ${message.text()}`)
    })
    await page.goto(demo.url)
    pages.push(page)
  }
  for (const page of pages) {
    await page.waitForSelector('[data-testid="connection-status"][data-status="connected"]')
    await page.waitForSelector('[data-testid="online-peer"][data-you]')
  }
  return { context, pages }
}

/** The name this tab picked, as its own list shows it. */
const ownName = (page: Page) => page.getAttribute('[data-testid="online-peer"][data-you]', 'data-name') as Promise<string>

/** The names of the others, as `page`'s list shows them. */
const othersOf = (page: Page) =>
  page.$$eval('[data-testid="online-peer"]:not([data-you])', (peers) => peers.map((peer) => peer.getAttribute('data-name') ?? ''))

/** Waits until `page` lists exactly `count` others. */
const listsOthers = (page: Page, count: number, timeout = 10_000) =>
  page.waitForFunction((expected) => document.querySelectorAll('[data-testid="online-peer"]:not([data-you])').length === expected, count, { timeout })

/** Where `page` draws the cursors it shows, px from the top left of its todo list. */
const cursorsOf = (page: Page) =>
  page.$$eval('[data-testid="cursor"]', (cursors) =>
    cursors.map((cursor) => ({ name: cursor.getAttribute('data-name'), x: parseFloat((cursor as HTMLElement).style.left), y: parseFloat((cursor as HTMLElement).style.top) })),
  )

/** Moves the mouse of `page` to (x, y) px from the top left of its todo list. */
async function pointAt(page: Page, x: number, y: number): Promise<void> {
  const box = await page.locator('[data-testid="todo-board"]').boundingBox()
  if (box === null) throw new Error('the todo list is not shown')
  await page.mouse.move(box.x + x, box.y + y, { steps: 4 })
}

describe.skipIf(!haveChromium)('presence in the demo, in Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(bundle)) throw new Error('dist/app.js is missing: run `pnpm build` first')
    browser = await launchChromium()
  })
  afterAll(() => browser?.close())
  beforeEach(async () => {
    errors = []
    demo = await startDemo(0)
  })
  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close()
    await demo.close()
    expect(errors).toEqual([])
  })

  it('two browsers see each other join, move over the todo list, and leave', async () => {
    const { pages: [a] } = await browserWithTabs(1)
    const { context: bContext, pages: [b] } = await browserWithTabs(1)
    if (a === undefined || b === undefined) throw new Error('no tabs')
    const [aName, bName] = [await ownName(a), await ownName(b)]
    await Promise.all([listsOthers(a, 1), listsOthers(b, 1)])
    expect(await othersOf(a)).toEqual([bName])
    expect(await othersOf(b)).toEqual([aName])
    // No cursor until a pointer is over the list.
    expect(await cursorsOf(b)).toEqual([])

    await pointAt(a, 40, 20)
    await b.waitForSelector('[data-testid="cursor"]', { state: 'visible', timeout: 5000 })
    await until(async () => JSON.stringify(await cursorsOf(b)) === JSON.stringify([{ name: aName, x: 40, y: 20 }]), 5000)
    // Many moves: the last position arrives (the replica sends the latest, at most 20 a second).
    const box = await a.locator('[data-testid="todo-board"]').boundingBox()
    if (box === null) throw new Error('the todo list is not shown')
    for (let i = 1; i <= 20; i++) await a.mouse.move(box.x + 40 + i * 5, box.y + 30)
    await until(async () => JSON.stringify(await cursorsOf(b)) === JSON.stringify([{ name: aName, x: 140, y: 30 }]), 5000)
    // And the other way round.
    await pointAt(b, 15, 25)
    await until(async () => JSON.stringify(await cursorsOf(a)) === JSON.stringify([{ name: bName, x: 15, y: 25 }]), 5000)

    // The pointer leaves the list: its cursor hides.
    await a.mouse.move(1, 1)
    await until(async () => (await cursorsOf(b)).length === 0, 5000)
    expect(await othersOf(b)).toEqual([aName])

    // B's browser closes: A's list drops it.
    await bContext.close()
    contexts.splice(contexts.indexOf(bContext), 1)
    await listsOthers(a, 0)
    expect(await cursorsOf(a)).toEqual([])
  })

  it('a tab that closes leaves the other browser\'s list at once, leader, follower or last', async () => {
    const { pages: [watcher] } = await browserWithTabs(1)
    const { pages } = await browserWithTabs(3)
    const [leader, follower, last] = pages as [Page, Page, Page]
    await listsOthers(watcher as Page, 3)
    await until(() => demo.streams() === 2)
    // At once: well within the server's grace for an ended stream (3 s), let alone its silence timeout (15 s).
    const leavesAtOnce = async (page: Page, othersLeft: number) => {
      const name = await ownName(page)
      const closedAt = Date.now()
      await page.close()
      await listsOthers(watcher as Page, othersLeft, 2000)
      expect(Date.now() - closedAt).toBeLessThan(2000)
      expect(await othersOf(watcher as Page)).not.toContain(name)
    }
    // A follower tab: it says so as it closes (and its lock goes, which the leader tab watches).
    await leavesAtOnce(follower, 2)
    // The leader tab: it says so too (the server takes its goodbye even past its stream's end), and the last tab leads a new stream.
    await leavesAtOnce(leader, 1)
    expect(await othersOf(watcher as Page)).toEqual([await ownName(last)])
    // The browser's last tab.
    await leavesAtOnce(last, 0)
  })

  it('eight tabs of one browser are eight presences over one SSE connection', async () => {
    const { pages } = await browserWithTabs(8)
    await until(() => demo.streams() === 1, 15_000)
    const names = await Promise.all(pages.map(ownName))
    const { pages: [outside] } = await browserWithTabs(1)
    await listsOthers(outside as Page, 8)
    expect((await othersOf(outside as Page)).sort()).toEqual([...names].sort())
    // Each tab lists the seven others of its browser and the outside one.
    for (const page of pages) await listsOthers(page, 8)
    // Still one stream for the eight tabs, one for the outside browser.
    expect(demo.streams()).toBe(2)
    // A cursor from the fifth tab reaches the outside browser.
    await pointAt(pages[4] as Page, 60, 10)
    await until(async () => JSON.stringify(await cursorsOf(outside as Page)) === JSON.stringify([{ name: names[4], x: 60, y: 10 }]), 5000)
  })
})
