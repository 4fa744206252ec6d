import express from 'express'
import { createUniverse } from 'zuno/server'
import type { ConformanceConfig, RunningTarget } from '../../zuno/test/conformance/suite'
import { serveExpress } from './serveExpress'

/** Starts an Express app serving a fresh universe configured for the conformance suite. */
export function startExpress(
  config: ConformanceConfig,
  customize?: (app: express.Express) => void,
): Promise<RunningTarget> {
  const universe = createUniverse({
    stores: config.stores,
    allowStore: (key) => key.startsWith(config.creatablePrefix),
    retention: config.retention,
  })
  const options = { maxBodyBytes: config.maxBodyBytes, maxDepth: config.maxDepth, heartbeatMs: config.heartbeatMs }
  return serveExpress(universe, options, customize)
}
