import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import express, { type ErrorRequestHandler } from 'express'
import { type AuthoritativeUniverse, createUniverse, type Storage } from 'zuno/server'
import type { ActionsOfApp } from 'zuno'
import { zuno } from 'zuno-express'
import { errorPage } from './page'
import { renderDemoPage } from './render'
import { type DemoStates, demoApp } from './stores'

export type { DemoStates, Todo } from './stores'
export { demoApp, demoSchemas, demoStores } from './stores'

/** A running demo. */
export interface DemoServer {
  universe: AuthoritativeUniverse<DemoStates, never, ActionsOfApp<typeof demoApp>>
  server: Server
  url: string
  /** Open SSE streams: one per browser when its tabs share. */
  streams(): number
  close(): Promise<void>
  /**
   * Graceful stop, for SIGTERM: new requests get 503 JSON while proposals in flight finish and
   * streams end with a retry hint; for `drainMs` requests still get that 503 instead of a refused
   * connection; then the HTTP server closes, then the universe and the storage.
   */
  shutdown(drainMs?: number): Promise<void>
}

/** Where `build:app` puts the browser bundle. */
const bundleDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist')

/** Any other failure: logged here, answered with a plain page (Express's own shows the stack outside production). */
const plainErrors: ErrorRequestHandler = (error, _req, res, next) => {
  if (res.headersSent) return next(error)
  const status = typeof error?.status === 'number' && error.status >= 400 && error.status < 600 ? error.status : 500
  if (status >= 500) console.error('zuno demo: request failed', error)
  res.status(status).type('html').send(errorPage)
}

/** Starts the demo on `port` (0 for any free one) on `host`, keeping its state in `storage` (default: memory). */
export async function startDemo(port: number, host = '127.0.0.1', storage?: Storage): Promise<DemoServer> {
  const universe = createUniverse({ app: demoApp, ...(storage ? { storage } : {}) })
  const sync = zuno(universe)
  const app = express()
  app.use('/zuno', sync)
  // Server-side rendering, one snapshot universe per request; the client hydrates from the same snapshot.
  app.get('/', async (_req, res) => {
    const { status, html } = await renderDemoPage(universe)
    res.status(status).type('html').set('cache-control', 'no-store').send(html)
  })
  app.use(express.static(bundleDir))
  app.use(plainErrors)

  const server = createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  await universe.ready
  const address = server.address() as AddressInfo
  return {
    universe,
    server,
    url: `http://${host}:${address.port}`,
    streams: () => sync.server.streams,
    async shutdown(drainMs = 500) {
      await sync.shutdown()
      await new Promise((resolve) => setTimeout(resolve, drainMs))
      const closed = new Promise((resolve) => server.close(resolve))
      // A client that holds a request open past the drain does not hold the exit.
      const stuck = setTimeout(() => server.closeAllConnections(), 5000)
      await closed
      clearTimeout(stuck)
      await universe.close()
      await storage?.close()
    },
    async close() {
      await sync.shutdown()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
      await storage?.close()
    },
  }
}
