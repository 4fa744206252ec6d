/**
 * A real Zuno server for the tab tests: Express with zuno-express, a page that runs
 * `tabPage.ts` (bundled from the workspace's sources), and a gate on the SSE endpoint, so a test
 * can hold the leader tab's stream before it says anything.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import express from 'express'
import { type AuthoritativeUniverse, createUniverse } from 'zuno/server'
import { zuno } from 'zuno-express'

export interface TabServer {
  universe: AuthoritativeUniverse
  url: string
  /** SSE requests received so far (held or not). */
  streamRequests(): number
  /** SSE streams open now. */
  streams(): number
  /** Holds every SSE request that arrives from now on, until {@link TabServer.open}. */
  hold(): void
  /** Lets the held SSE requests (and later ones) through. */
  open(): void
  close(): Promise<void>
}

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/** Bundles the page once per run, from sources, so the test sees the code under test and not a stale build. */
async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [source('./tabPage.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    write: false,
    alias: { zuno: source('../../../../packages/zuno/src/index.ts') },
    logLevel: 'warning',
  })
  return result.outputFiles[0]?.text ?? ''
}

export async function startTabServer(stores: Record<string, unknown>): Promise<TabServer> {
  const universe = createUniverse({ stores })
  const sync = zuno(universe)
  const script = await bundlePage()
  let held: (() => void)[] | undefined
  let streamRequests = 0
  const app = express()
  app.use('/zuno/sse', (_req, _res, next) => {
    streamRequests += 1
    if (held === undefined) return next()
    held.push(next)
  })
  app.use('/zuno', sync)
  app.get('/', (_req, res) => {
    res.type('html').send('<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body><script type="module" src="/page.js"></script></body></html>')
  })
  app.get('/page.js', (_req, res) => {
    res.type('text/javascript').send(script)
  })
  const server: Server = createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  await universe.ready
  const open = () => {
    const waiting = held ?? []
    held = undefined
    for (const next of waiting) next()
  }
  return {
    universe,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    streamRequests: () => streamRequests,
    streams: () => sync.server.streams,
    hold() {
      held ??= []
    },
    open,
    async close() {
      open()
      sync.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
    },
  }
}
