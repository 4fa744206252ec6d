import { createServer } from 'node:http'
import { describe, expect, it } from 'vitest'
import { createUniverse, createNodeHandler } from 'zuno/server'
import { abandonStreams, gatedAuthenticate } from './support/abandon'
import { openRawStream } from './support/sseReader'
import { until } from './support/until'
import { type ConformanceConfig, type RunningTarget, runConformanceSuite, serverOptions } from './conformance/suite'
import { conformanceActions } from './conformance/actions'

/** Core's node:http handler on a bare `http.Server`, no framework. */
async function startNodeHandler(config: ConformanceConfig): Promise<RunningTarget> {
  const universe = createUniverse({
    stores: config.stores,
    allowStore: (key) => key.startsWith(config.creatablePrefix),
    retention: config.retention,
    actions: conformanceActions,
  })
  const handler = createNodeHandler(universe, serverOptions(config))
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}/zuno`,
    shutdown: () => handler.shutdown(),
    async close() {
      handler.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
    },
  }
}

runConformanceSuite({ name: 'node:http handler', start: startNodeHandler })

describe('node:http handler lifecycle', () => {
  it('gives back the place of every stream whose client left during an async authenticate', async () => {
    const gated = gatedAuthenticate()
    const universe = createUniverse({ stores: { counter: 0 } })
    const handler = createNodeHandler(universe, { authenticate: gated.authenticate, maxStreams: 5, maxStreamsPerPrincipal: 16 })
    const server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno`
    try {
      await abandonStreams(url, 20, gated, () => new Promise((resolve) => server.getConnections((_, count) => resolve(count))))
      const opened = await Promise.all(Array.from({ length: 5 }, () => openRawStream(`${url}/sse`)))
      for (const sse of opened) expect((await sse.nextEvent()).event).toBe('snapshot')
      expect((await fetch(`${url}/sse`)).status).toBe(503)
      for (const sse of opened) sse.close()
      await until(() => handler.server.streams === 0)
    } finally {
      handler.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('passes requests outside its prefix to next, and answers them 404 in JSON without one', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const handler = createNodeHandler(universe)
    const server = createServer((req, res) => handler(req, res, () => res.writeHead(204).end()))
    const bare = createServer(handler)
    for (const s of [server, bare]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
    const base = (s: typeof server) => `http://127.0.0.1:${(s.address() as { port: number }).port}`
    try {
      expect((await fetch(`${base(server)}/elsewhere`)).status).toBe(204)
      expect((await fetch(`${base(server)}/zunoish/state`)).status).toBe(204)
      expect((await fetch(`${base(server)}/zuno/state`)).status).toBe(200)
      const missing = await fetch(`${base(bare)}/elsewhere`)
      expect(missing.status).toBe(404)
      expect(await missing.json()).toMatchObject({ ok: false, error: 'not_found' })
    } finally {
      for (const s of [server, bare]) {
        s.closeAllConnections()
        await new Promise((resolve) => s.close(resolve))
      }
    }
  })
})
