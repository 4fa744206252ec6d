/** The Bun demo serves the same demo as the Express one: same stores, page, test ids and sync. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventSource } from 'eventsource'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { until } from '../../../packages/zuno/test/support/until'
import { type BunDemo, haveBun, startBunDemo } from './bunDemo'

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
if (!existsSync(chromiumPath) && process.env.CI) throw new Error(`Chromium is required in CI and missing at ${chromiumPath}`)

const dataDir = mkdtempSync(join(tmpdir(), 'zuno-bun-demo-'))
let demo: BunDemo
let url: string

describe.skipIf(!haveBun)('the demo on Elysia and Bun', () => {
  beforeAll(async () => {
    demo = await startBunDemo(await freePort(), dataDir)
    url = demo.url
  })
  afterAll(async () => {
    await demo?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('renders the same page, with the same test ids and stores', async () => {
    const html = await (await fetch(`${url}/`)).text()
    for (const testId of ['counter-value', 'counter-increment', 'connection-status', 'todo-list', 'hint']) {
      expect(html).toContain(`data-testid="${testId}"`)
    }
    expect((await fetch(`${url}/app.js`)).status).toBe(200)
    const state = await (await fetch(`${url}/zuno/state`)).json()
    expect(Object.keys(state.stores).sort()).toEqual(['counter', 'todos'])
  })

  it('keeps Node replicas in sync through Bun', async () => {
    const a = connect({ url: `${url}/zuno`, EventSource })
    const b = connect({ url: `${url}/zuno`, EventSource })
    try {
      const start = (await (await fetch(`${url}/zuno/state`)).json()).stores.counter.version as number
      await Promise.all(Array.from({ length: 10 }, () => a.store<number>('counter', 0).set((n) => n + 1)))
      await until(() => b.store<number>('counter', 0).version === start + 10)
    } finally {
      a.close()
      b.close()
    }
  })

  it.skipIf(!existsSync(chromiumPath))('syncs two tabs in Chromium', async () => {
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    try {
      const context = await browser.newContext()
      const [a, b] = [await context.newPage(), await context.newPage()]
      for (const page of [a, b]) {
        await page.goto(url)
        await page.waitForSelector('[data-testid="connection-status"][data-status="connected"]')
      }
      const before = Number(await a.locator('[data-testid="counter-value"]').textContent())
      await a.click('[data-testid="counter-increment"]')
      await b.waitForFunction(
        (expected) => document.querySelector('[data-testid="counter-value"]')?.textContent === String(expected),
        before + 1,
      )
    } finally {
      await browser.close()
    }
  })
})
