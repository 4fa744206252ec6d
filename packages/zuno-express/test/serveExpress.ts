import type { Server } from 'node:http'
import express from 'express'
import type { ServedUniverse } from 'zuno/server'
import { type ZunoExpressOptions, type ZunoMiddleware, zuno } from '../src/index'

/** A universe served by Express on an ephemeral 127.0.0.1 port. */
export interface ExpressServer<U> {
  universe: U
  middleware: ZunoMiddleware
  port: number
  http: Server
  /** Base URL with the `/zuno` prefix. */
  url: string
  close(): Promise<void>
}

/** Mounts `universe` at `/zuno` (after whatever `customize` adds, before whatever `after` adds) and listens. */
export async function serveExpress<U extends ServedUniverse & { close(): Promise<void> }>(
  universe: U,
  options: ZunoExpressOptions = {},
  customize: (app: express.Express) => void = () => {},
  after: (app: express.Express) => void = () => {},
): Promise<ExpressServer<U>> {
  const middleware = zuno(universe, options)
  const app = express()
  customize(app)
  app.use('/zuno', middleware)
  after(app)
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  return {
    universe,
    middleware,
    port,
    http: server,
    url: `http://127.0.0.1:${port}/zuno`,
    async close() {
      middleware.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
    },
  }
}
