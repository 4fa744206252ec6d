/**
 * Server rendering and hydration of the Bun demo (`pnpm demo:bun`, a real Bun) in real Chromium:
 * three tabs at a time hydrate with no page error (React's #418 included) and then show the live state.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openThreeTabs } from '../../express/test/support/hydrationCheck'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { type BunDemo, haveBun, startBunDemo } from './bunDemo'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveChromium = existsSync(executablePath)
if (!haveChromium && process.env.CI) throw new Error(`Chromium is required in CI and missing at ${executablePath}`)

const dataDir = mkdtempSync(join(tmpdir(), 'zuno-bun-hydration-'))
let browser: Browser
let demo: BunDemo

/** The server's counter, read over HTTP as any client would. */
async function serverCounter(): Promise<number> {
  const state = (await (await fetch(`${demo.url}/zuno/state`)).json()) as { stores: { counter?: { state: number } } }
  return state.stores.counter?.state ?? 0
}

describe.skipIf(!haveBun || !haveChromium)('hydration of the Bun demo in Chromium', () => {
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    demo = await startBunDemo(await freePort(), dataDir)
  })
  afterAll(async () => {
    await browser?.close()
    await demo?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('hydrates three tabs with no page error, five times over', async () => {
    for (let run = 0; run < 5; run++) {
      const expected = await serverCounter()
      const { errors, counters } = await openThreeTabs(browser, demo.url, () => expected)
      expect(errors).toEqual([])
      for (const { connected } of counters) expect(connected).toBe(String(expected))
    }
  })
})
