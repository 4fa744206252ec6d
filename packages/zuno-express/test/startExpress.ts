import type { AddressInfo } from 'node:net'
import express from 'express'
import { createUniverse } from 'zuno/server'
import type { ConformanceConfig, RunningTarget } from '../../zuno/test/conformance/suite'
import { zuno } from '../src/index'

/** Starts an Express app serving a fresh universe on an ephemeral 127.0.0.1 port. */
export async function startExpress(
  config: ConformanceConfig,
  customize: (app: express.Express) => void = () => {},
): Promise<RunningTarget> {
  const universe = createUniverse({
    stores: config.stores,
    allowStore: (key) => key.startsWith(config.creatablePrefix),
    retention: config.retention,
  })
  const middleware = zuno(universe, {
    maxBodyBytes: config.maxBodyBytes,
    maxDepth: config.maxDepth,
    heartbeatMs: config.heartbeatMs,
  })
  const app = express()
  customize(app)
  app.use('/zuno', middleware)
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/zuno`,
    async close() {
      middleware.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await universe.close()
    },
  }
}
