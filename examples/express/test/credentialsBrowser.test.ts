/**
 * A stream refused with 401 in real headless Chromium: a browser's EventSource never says why it
 * failed, so this is where the client's own reading of the answer matters.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNodeHandler, createUniverse } from 'zuno/server'
import { haveChromium, launchChromium } from './support/chromium'

let browser: Browser
let server: Server
let url: string
let bundleDir: string
const seen: string[] = []
const valid = new Set(['fresh'])

describe.skipIf(!haveChromium)('credentials in Chromium', () => {
  beforeAll(async () => {
    bundleDir = mkdtempSync(join(tmpdir(), 'zuno-credentials-page-'))
    const outfile = join(bundleDir, 'page.js')
    await build({
      entryPoints: [fileURLToPath(new URL('./support/credentialsPage.ts', import.meta.url))],
      outfile,
      bundle: true,
      format: 'esm',
      target: 'es2022',
      logLevel: 'warning',
    })
    const script = readFileSync(outfile)
    const universe = createUniverse({ stores: { counter: 0 } })
    const handler = createNodeHandler(universe, {
      authenticate: (request) => {
        const token = request.query.get('token') ?? request.header('authorization')?.replace(/^Bearer /, '')
        return token !== undefined && valid.has(token) ? { id: 'ada' } : undefined
      },
    })
    server = createServer((req, res) => {
      seen.push(`${req.method} ${(req.url ?? '').split('?')[0]}`)
      if (req.url === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/page.js"></script>')
      if (req.url === '/page.js') return res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
      handler(req, res)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
    rmSync(bundleDir, { recursive: true, force: true })
  })

  it('shows unauthorized after a 401 stream, holds set(), and sends it once the token changes', async () => {
    const page = await browser.newPage()
    const pageErrors: string[] = []
    page.on('pageerror', (error) => pageErrors.push(error.message))
    await page.goto(url)
    await page.waitForFunction(() => (window as any).replica?.status.get() === 'unauthorized')
    expect(await page.evaluate(() => (window as any).replica.lastError.get()?.code)).toBe('unauthenticated')
    // The stream, and the one fetch that read why it was refused: no reconnects after that.
    expect(seen.filter((request) => request === 'GET /zuno/sse')).toHaveLength(2)

    await page.evaluate(() => {
      const w = window as any
      w.settled = w.replica.store('counter', 0).set(1)
    })
    expect(seen.filter((request) => request === 'POST /zuno/sync')).toHaveLength(0)
    expect(await page.evaluate(() => (window as any).replica.pending.get())).toBe(1)

    await page.evaluate(() => {
      ;(window as any).token = 'fresh'
    })
    expect(await page.evaluate(() => (window as any).settled)).toBe(1)
    expect(await page.evaluate(() => (window as any).replica.status.get())).toBe('connected')
    expect(seen.filter((request) => request === 'GET /zuno/sse')).toHaveLength(3)
    expect(seen.filter((request) => request === 'POST /zuno/sync')).toHaveLength(1)
    expect(pageErrors).toEqual([])
    await page.close()
  })
})
