import { execFileSync } from 'node:child_process'
import type { Server } from 'node:http'
import { connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { node } from '@elysiajs/node'
import { Elysia } from 'elysia'
import { afterEach, describe, expect, it } from 'vitest'
import { createUniverse } from 'zuno/server'
import { abandonStreams, gatedAuthenticate } from '../../zuno/test/support/abandon'
import { freePort } from '../../zuno/test/support/freePort'
import { slowStorage } from '../../zuno/test/support/slowStorage'
import { openRawStream, type RawStream } from '../../zuno/test/support/sseReader'
import { until } from '../../zuno/test/support/until'
import { zuno } from '../src/index'
import { bunPath, haveBun, startElysiaOnNode, startOnBun } from './targets'
import { epochOf, rawProposal } from '../../zuno/test/support/rawProposal'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function streams(count: number, url: string): Promise<RawStream[]> {
  const opened = await Promise.all(Array.from({ length: count }, () => openRawStream(`${url}/sse`)))
  await Promise.all(opened.map((stream) => stream.nextEvent()))
  return opened
}

const propose = (url: string, body: string, length?: number) =>
  fetch(`${url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(length === undefined ? {} : { 'content-length': String(length) }) },
    body,
  })

describe('zuno-elysia', () => {
  it('is a typed Elysia plugin that composes with other routes', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const app = new Elysia({ adapter: node() }).use(zuno(universe)).get('/health', () => 'ok')
    const response = await app.handle(new Request('http://localhost/zuno/state'))
    expect(await response.json()).toMatchObject({ stores: { counter: { version: 0, state: 0 } } })
    expect(await (await app.handle(new Request('http://localhost/health'))).text()).toBe('ok')
    // Registering the same plugin twice (same name and prefix) is deduplicated by Elysia.
    const twice = new Elysia().use(zuno(universe)).use(zuno(universe))
    expect(twice.routes.filter((route) => route.path === '/zuno/*')).toHaveLength(1)
  })

  describe.skipIf(!haveBun)('on Bun', () => {
    it('runs the durable file log on Bun too', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'zuno-bun-file-'))
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
      const output = execFileSync(bunPath, [fileURLToPath(new URL('./fixtures/fileOnBun.ts', import.meta.url))], {
        env: { ...process.env, DATA_DIR: dir },
      }).toString()
      expect(JSON.parse(output)).toEqual({ runtime: 'bun', locked: 'locked', counter: { version: 3, state: 3 } })
    })

    it('keeps an idle stream alive past Bun’s 10 s idle timeout', async () => {
      const server = await startOnBun('elysia', {})
      cleanups.push(server.close)
      const sse = await openRawStream(`${server.url}/sse`)
      cleanups.push(() => sse.close())
      await sse.nextEvent()
      // 12 s with no change: heartbeat comments (every 5 s by default) keep the connection busy.
      let heartbeats = 0
      const until12s = Date.now() + 12_000
      while (Date.now() < until12s) {
        const frame = await sse.next(Math.max(1, until12s - Date.now())).catch(() => undefined)
        if (frame?.comment !== undefined) heartbeats += 1
      }
      expect(heartbeats).toBeGreaterThanOrEqual(2)
      const answer = await propose(server.url, rawProposal(await epochOf(server.url)))
      expect(answer.status).toBe(200)
      expect(JSON.parse((await sse.nextEvent()).data as string)).toMatchObject({ version: 1, state: 1 })
    }, 30_000)

    it('lets go of streams whose clients disconnect', async () => {
      const server = await startOnBun('elysia', {})
      cleanups.push(server.close)
      const count = async () => Number(await (await fetch(server.url.replace('/zuno', '/debug/streams'))).text())
      const opened = await streams(5, server.url)
      expect(await count()).toBe(5)
      for (const stream of opened) stream.close()
      await until(async () => (await count()) === 0)
    })

    for (const target of ['elysia', 'fetch'] as const) {
      it(`gives back the place of every stream whose client left during an async authenticate (${target})`, async () => {
        const server = await startOnBun(target, {}, { GATED: '1' })
        cleanups.push(server.close)
        const debug = async (route: string) => (await fetch(server.url.replace('/zuno', `/debug/${route}`))).text()
        const { hostname, port } = new URL(server.url)
        for (let i = 0; i < 20; i++) {
          const socket = connect(Number(port), hostname)
          socket.on('error', () => {})
          socket.write(`GET /zuno/sse HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`)
          await until(async () => JSON.parse(await debug('counts')).entered === i + 1)
          socket.destroy()
        }
        // Bun has seen every client leave (their requests' signals aborted) before authenticate returns.
        await until(async () => JSON.parse(await debug('counts')).aborted === 20)
        await debug('open-gate')
        const opened = await streams(5, server.url)
        expect((await fetch(`${server.url}/sse`)).status).toBe(503)
        for (const stream of opened) stream.close()
        await until(async () => (await debug('streams')) === '0')
      })
    }

    it('refuses bodies over the default 1 MiB limit, not Bun’s 128 MiB', async () => {
      const server = await startOnBun('elysia', {})
      cleanups.push(server.close)
      const big = rawProposal(await epochOf(server.url), { state: 'x'.repeat(1_100_000) })
      const answer = await propose(server.url, big)
      expect(answer.status).toBe(413)
      expect(await answer.json()).toMatchObject({ ok: false, error: 'payload_too_large' })
    })
  })

  it('lets go of streams whose clients disconnect, on Node.js', async () => {
    const server = await startElysiaOnNode({
      stores: { counter: 0 },
      creatablePrefix: 'open.',
      retention: 10,
      maxBodyBytes: 1024,
      maxDepth: 8,
      heartbeatMs: 1000,
      resumeWaitMs: 100,
      maxProposalsPerSecond: 50,
    })
    cleanups.push(server.close)
    const opened = await streams(3, server.url)
    expect(server.streams()).toBe(3)
    for (const stream of opened) stream.close()
    await until(() => server.streams() === 0)
  })

  it('gives back the place of every stream whose client left during an async authenticate, on Node.js', async () => {
    const gated = gatedAuthenticate()
    const universe = createUniverse({ stores: { counter: 0 } })
    const plugin = zuno(universe, { authenticate: gated.authenticate, maxStreams: 5, maxStreamsPerPrincipal: 16 })
    const port = await freePort()
    const app = new Elysia({ adapter: node() }).use(plugin)
    const info = await new Promise<{ stop(): Promise<void> | void; raw?: { node?: { server?: Server } } }>((resolve) =>
      app.listen({ hostname: '127.0.0.1', port }, (listening) => resolve(listening as never)),
    )
    const http = info.raw?.node?.server as Server
    cleanups.push(async () => {
      plugin.closeStreams()
      http.closeAllConnections()
      await info.stop()
    })
    const url = `http://127.0.0.1:${port}/zuno`
    await abandonStreams(url, 20, gated, () => new Promise((resolve) => http.getConnections((_, count) => resolve(count))))
    const opened = await streams(5, url)
    expect((await fetch(`${url}/sse`)).status).toBe(503)
    for (const stream of opened) stream.close()
    await until(() => plugin.zunoServer.streams === 0)
  })

  it('shuts down gracefully on Node.js: in-flight proposals finish, new requests get 503, streams get a retry hint', async () => {
    const storage = slowStorage()
    const universe = createUniverse({ stores: { counter: 0 }, storage })
    const plugin = zuno(universe)
    const response = await new Elysia({ adapter: node() }).use(plugin).handle(new Request('http://localhost/zuno/sse'))
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const inFlight = new Elysia().use(plugin).handle(
      new Request('http://localhost/zuno/sync', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: rawProposal(universe.epoch, { state: 42 }),
      }),
    )
    await until(() => storage.waiting() === 1)
    const stopping = plugin.shutdown()
    const refused = await new Elysia().use(plugin).handle(new Request('http://localhost/zuno/state'))
    expect(refused.status).toBe(503)
    storage.release()
    await stopping
    expect((await inFlight).status).toBe(200)
    expect(universe.store('counter').get()).toBe(42)
    let text = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    expect(text.trimEnd().endsWith('retry: 1000')).toBe(true)
  })

  it('applies authentication, authorization and origin checks like every adapter', async () => {
    const universe = createUniverse({ stores: { counter: 0, secret: 's' } })
    const app = new Elysia({ adapter: node() }).use(
      zuno(universe, {
        authenticate: (request) => (request.cookie('session') === 'ok' ? { id: 'u1' } : undefined),
        authorize: ({ storeKey }) => storeKey !== 'secret',
        allowedOrigins: ['https://app.example'],
      }),
    )
    const call = (path: string, headers: Record<string, string>, body?: unknown) =>
      app.handle(
        new Request(`http://localhost/zuno${path}`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        }),
      )
    expect((await call('/state', {})).status).toBe(401)
    expect((await call('/state', { cookie: 'session=ok', origin: 'https://evil.example' })).status).toBe(403)
    await universe.ready
    const write = JSON.parse(rawProposal(universe.epoch, { storeKey: 'secret', state: 'x' }))
    expect((await call('/sync', { cookie: 'session=ok' }, write)).status).toBe(403)
    expect(universe.store('secret').get()).toBe('s')
    const state = await (await call('/state', { cookie: 'session=ok' })).json()
    expect(Object.keys(state.stores)).toEqual(['counter'])
  })
})
