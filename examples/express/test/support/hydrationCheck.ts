/**
 * Opens the demo in three tabs of one Chromium context, one after another, and collects every
 * page error and console error (React reports a hydration mismatch, #418, as one of them). Each
 * tab must then say `connected` and show the server's counter.
 */
import type { Browser, Page } from 'playwright-core'

/** What the tabs reported. */
export interface HydrationRun {
  errors: string[]
  /** The counter each tab showed in the server's HTML, and once connected. */
  counters: { served: string; connected: string }[]
}

export async function openThreeTabs(browser: Browser, url: string, expectedCounter: () => number): Promise<HydrationRun> {
  const context = await browser.newContext()
  const errors: string[] = []
  const counters: HydrationRun['counters'] = []
  try {
    const pages: Page[] = []
    for (let i = 0; i < 3; i++) {
      const page = await context.newPage()
      page.on('pageerror', (error) => errors.push(`tab ${i}: pageerror: ${error.message}`))
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(`tab ${i}: console: ${message.text()}`)
      })
      const response = await page.goto(url)
      const html = (await response?.text()) ?? ''
      const served = /data-testid="counter-value">(\d+)</.exec(html)?.[1] ?? ''
      pages.push(page)
      counters.push({ served, connected: '' })
    }
    for (const [i, page] of pages.entries()) {
      await page.waitForSelector('[data-testid="connection-status"][data-status="connected"]', { timeout: 15_000 })
      await page.waitForFunction(
        (expected) => document.querySelector('[data-testid="counter-value"]')?.textContent === String(expected),
        expectedCounter(),
        { timeout: 15_000 },
      )
      const entry = counters[i]
      if (entry) entry.connected = (await page.locator('[data-testid="counter-value"]').textContent()) ?? ''
    }
  } finally {
    await context.close()
  }
  return { errors, counters }
}
