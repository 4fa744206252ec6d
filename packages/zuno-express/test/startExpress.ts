import express from 'express'
import { createUniverse } from 'zuno/server'
import { type ConformanceConfig, type RunningTarget, serverOptions } from '../../zuno/test/conformance/suite'
import { serveExpress } from './serveExpress'
import { conformanceActions } from '../../zuno/test/conformance/actions'

/** Starts an Express app serving a fresh universe configured for the conformance suite. */
export async function startExpress(
  config: ConformanceConfig,
  customize?: (app: express.Express) => void,
): Promise<RunningTarget> {
  const universe = createUniverse({
    stores: config.stores,
    allowStore: (key) => key.startsWith(config.creatablePrefix),
    retention: config.retention,
    actions: conformanceActions,
  })
  const served = await serveExpress(universe, serverOptions(config), customize)
  return { url: served.url, close: served.close, shutdown: () => served.middleware.shutdown() }
}
