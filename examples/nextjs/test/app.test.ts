/**
 * The Next.js example built and served as a user would (`next build`, which type-checks it, then
 * `next start`): its page renders the server's state, its route handler speaks Zuno's protocol,
 * and in real Chromium two browsers stay in sync through it and every page hydrates cleanly.
 */
import { existsSync } from 'node:fs'
import { EventSource } from 'eventsource'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newClientId, type StateResponse } from 'zuno'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { until } from '../../../packages/zuno/test/support/until'
import { openThreeTabs } from '../../express/test/support/hydrationCheck'
import { buildApp, type NextApp, startApp } from './support/nextApp'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveChromium = existsSync(executablePath)
if (!haveChromium && process.env.CI) throw new Error(`Chromium is required in CI and missing at ${executablePath} (apt-get install -y chromium)`)

let app: NextApp

beforeAll(async () => {
  await buildApp()
  app = await startApp(await freePort())
})
afterAll(() => app?.stop())

interface Stored<T> {
  version: number
  state: T
}

/** The server's state now, with its epoch (what a proposal must name). */
async function current(): Promise<{ counter: Stored<number>; todos: Stored<unknown[]>; epoch: string }> {
  const { stores, cursor } = (await (await fetch(`${app.url}/zuno/state`)).json()) as StateResponse
  return { counter: stores.counter as Stored<number>, todos: stores.todos as Stored<unknown[]>, epoch: epochOf(cursor) }
}

const epochOf = (eventId: string) => eventId.slice(0, eventId.lastIndexOf('-'))

/** Proposes `state` for a store on `baseVersion`, as the first op of a new client. */
async function propose(storeKey: string, baseVersion: number, state: unknown, epoch: string) {
  const response = await fetch(`${app.url}/zuno/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ storeKey, baseVersion, epoch, state, clientId: newClientId(), opId: 1 }),
  })
  return { status: response.status, body: (await response.json()) as unknown }
}

describe('the Next.js example over HTTP', () => {
  it('renders the state the server holds into the page HTML', async () => {
    const { counter, todos, epoch } = await current()
    expect((await propose('counter', counter.version, counter.state + 41, epoch)).status).toBe(200)
    const todo = { id: 'ssr', text: 'rendered on the server', done: false }
    expect((await propose('todos', todos.version, [...todos.state, todo], epoch)).status).toBe(200)
    const page = await fetch(app.url)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await page.text()
    expect(html).toContain(`<span data-testid="counter-value">${counter.state + 41}</span>`)
    expect(html).toContain('rendered on the server')
  })

  it('accepts a proposal and streams the change to an EventSource on /zuno/sse', async () => {
    const source = new EventSource(`${app.url}/zuno/sse`)
    const changes: unknown[] = []
    try {
      const snapshot = await new Promise<MessageEvent>((resolve, reject) => {
        source.addEventListener('snapshot', resolve, { once: true })
        source.addEventListener('error', reject, { once: true })
      })
      source.addEventListener('state', (event) => changes.push(JSON.parse(event.data)))
      const counter = (JSON.parse(snapshot.data) as StateResponse).stores.counter as Stored<number>
      const answer = await propose('counter', counter.version, counter.state + 1, epochOf(snapshot.lastEventId))
      const accepted = { storeKey: 'counter', version: counter.version + 1, state: counter.state + 1 }
      expect(answer).toEqual({ status: 200, body: { ok: true, ...accepted } })
      await until(() => changes.length > 0)
      expect(changes).toEqual([expect.objectContaining({ ...accepted, opId: 1 })])
    } finally {
      source.close()
    }
  })

  it('answers a stale baseVersion with 409 and the current state', async () => {
    const { counter, epoch } = await current()
    expect((await propose('counter', counter.version, counter.state + 1, epoch)).status).toBe(200)
    expect(await propose('counter', counter.version, 1000, epoch)).toEqual({
      status: 409,
      body: { ok: false, error: 'conflict', storeKey: 'counter', version: counter.version + 1, state: counter.state + 1 },
    })
  })

  it('answers a malformed proposal with a 4xx JSON error that names its code', async () => {
    const { epoch } = await current()
    const valid = { storeKey: 'counter', baseVersion: 0, epoch, state: 1, clientId: newClientId(), opId: 1 }
    const cases = [
      { body: '{"storeKey": "counter", ', type: 'application/json', status: 400, error: 'bad_json' },
      { body: JSON.stringify({ ...valid, baseVersion: -1 }), type: 'application/json', status: 400, error: 'invalid_base_version' },
      { body: JSON.stringify({ ...valid, storeKey: 'not declared' }), type: 'application/json', status: 400, error: 'invalid_store_key' },
      { body: JSON.stringify(valid), type: 'text/plain', status: 415, error: 'unsupported_media_type' },
    ]
    for (const { body, type, status, error } of cases) {
      const response = await fetch(`${app.url}/zuno/sync`, { method: 'POST', headers: { 'content-type': type }, body })
      expect(response.status, error).toBe(status)
      expect(response.headers.get('content-type')).toMatch(/^application\/json/)
      expect(await response.json()).toEqual({ ok: false, error, message: expect.any(String) })
    }
  })
})

describe.skipIf(!haveChromium)('the Next.js example in Chromium', () => {
  let browser: Browser

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  })
  afterAll(() => browser?.close())

  /** The page in a browser context of its own (so nothing passes between tabs), once connected; errors go to `errors`. */
  async function open(errors: string[]): Promise<Page> {
    const page = await (await browser.newContext()).newPage()
    page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console: ${message.text()}`)
    })
    await page.goto(app.url)
    await page.waitForSelector('[data-testid="connection-status"][data-status="connected"]')
    return page
  }

  const shows = (page: Page, value: number) =>
    page.waitForFunction((expected) => document.querySelector('[data-testid="counter-value"]')?.textContent === String(expected), value)

  it('shows a click in one browser in the other, through the server', async () => {
    const errors: string[] = []
    const a = await open(errors)
    const b = await open(errors)
    try {
      const before = Number(await a.locator('[data-testid="counter-value"]').textContent())
      await a.click('[data-testid="counter-increment"]')
      await shows(b, before + 1)
      await b.fill('input[name=text]', 'added in browser b')
      await b.click('button[type=submit]')
      await a.waitForSelector('[data-testid="todo-list"] li:has-text("added in browser b")')
      expect((await current()).counter.state).toBe(before + 1)
      expect(errors).toEqual([])
    } finally {
      await Promise.all([a.context().close(), b.context().close()])
    }
  })

  it('hydrates three tabs from the server-rendered state with no error, after each of three writes', async () => {
    for (let run = 0; run < 3; run++) {
      const { counter, epoch } = await current()
      expect((await propose('counter', counter.version, counter.state + 1, epoch)).status).toBe(200)
      const { errors, counters } = await openThreeTabs(browser, app.url, () => counter.state + 1)
      expect(errors).toEqual([])
      expect(counters).toEqual(Array(3).fill({ served: String(counter.state + 1), connected: String(counter.state + 1) }))
    }
  })
})
