/**
 * Server rendering and hydration of the Express demo in real Chromium: several tabs, each hydrating
 * while the others already lead and relay, render exactly the server's snapshot (status included),
 * so React reports no mismatch (#418), and then show the live state.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DemoServer, startDemo } from '../src/demoServer'
import { haveChromium, launchChromium } from './support/chromium'
import { openThreeTabs } from './support/hydrationCheck'

const bundle = fileURLToPath(new URL('../dist/app.js', import.meta.url))

let browser: Browser
let demo: DemoServer

describe.skipIf(!haveChromium)('hydration of the Express demo in Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(bundle)) throw new Error('dist/app.js is missing: run `pnpm build` first')
    browser = await launchChromium()
    demo = await startDemo(0)
  })
  afterAll(async () => {
    await browser?.close()
    await demo?.close()
  })

  it('hydrates three tabs with no page error, five times over, each with a write in between', async () => {
    for (let run = 0; run < 5; run++) {
      await demo.universe.store('counter').set((n) => n + 1)
      const { errors, counters } = await openThreeTabs(browser, demo.url, () => demo.universe.store('counter').get())
      expect(errors).toEqual([])
      for (const { connected } of counters) expect(connected).toBe(String(demo.universe.store('counter').get()))
    }
  })
})
