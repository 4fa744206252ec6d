import { existsSync } from 'node:fs'
import { type Browser, chromium } from 'playwright-core'

/** Debian's Chromium unless CHROMIUM_PATH names another. */
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Without Chromium the browser tests skip, except in CI, where that would hide them: there it is an error. */
export const haveChromium = existsSync(executablePath)
if (!haveChromium && process.env.CI) throw new Error(`Chromium is required in CI and missing at ${executablePath} (apt-get install -y chromium)`)

/** Headless Chromium as the browser tests drive it: no sandbox (containers), no background traffic of its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}
