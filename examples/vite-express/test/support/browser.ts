/** Debian's Chromium, driven by playwright-core; in CI a missing Chromium fails the run instead of skipping it. */
import { existsSync } from 'node:fs'
import { type Browser, chromium, type Page } from 'playwright-core'

export const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const haveChromium = existsSync(executablePath)
if (!haveChromium && process.env.CI) {
  throw new Error(`Chromium is required in CI and missing at ${executablePath} (apt-get install -y chromium)`)
}

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}

/** Collects the page's uncaught errors and console errors, for a test to expect none. */
export function errorsOf(page: Page): string[] {
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`)
  })
  return errors
}

/** Opens the app at `url` and waits until its replica is connected. */
export async function openApp(page: Page, url: string): Promise<void> {
  await page.goto(url)
  await page.waitForSelector('[data-testid="status"]:text-is("connected")')
}

/** Waits until the page's counter shows `value`. */
export async function showsCount(page: Page, value: number): Promise<void> {
  await page.waitForFunction((expected) => document.querySelector('[data-testid="counter"]')?.textContent === String(expected), value, { timeout: 10_000 })
}
