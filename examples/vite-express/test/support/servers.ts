/**
 * The example's real parts, started the way its scripts start them but on ports of the test's
 * choosing: the Express server (in this process), Vite's production build and Vite's dev server.
 * Vite reads the example's own vite.config.ts; the tests only add aliases to the packages' sources,
 * so they never run against a stale build.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build, createServer, type InlineConfig, type ViteDevServer } from 'vite'
import { alias } from '../../../../vitest.shared'
import { type ApiServer, createApiServer } from '../../src/server'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** What every test's Vite gets over the example's config: the workspace's sources, one React, and quiet logs. */
const testConfig: InlineConfig = {
  root,
  configFile: `${root}/vite.config.ts`,
  resolve: { alias, dedupe: ['react', 'react-dom'] },
  logLevel: 'warn',
}

export interface RunningApi extends ApiServer {
  url: string
  close(): Promise<void>
}

/** The Express server on 127.0.0.1 and an ephemeral port; with `dist`, serving the built client as in production. */
export async function startApi(dist?: string): Promise<RunningApi> {
  const api = createApiServer(dist === undefined ? {} : { dist })
  await api.universe.ready
  const http: Server = await new Promise((resolve) => {
    const listening = api.server.listen(0, '127.0.0.1', () => resolve(listening))
  })
  return {
    ...api,
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    async close() {
      api.sync.close()
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
      await api.universe.close()
    },
  }
}

/** `vite build` through Vite's JS API, into `outDir`. */
export async function buildClient(outDir: string): Promise<void> {
  await build({ ...testConfig, build: { outDir, emptyOutDir: true } })
}

export interface RunningDev {
  url: string
  vite: ViteDevServer
  close(): Promise<void>
}

/** `vite` (the dev server) on 127.0.0.1 and an ephemeral port, its proxy pointed at `apiUrl` through `API_URL` as a developer would. */
export async function startDev(apiUrl: string): Promise<RunningDev> {
  const before = process.env.API_URL
  process.env.API_URL = apiUrl
  try {
    const vite = await createServer({ ...testConfig, server: { host: '127.0.0.1', port: 0 } })
    await vite.listen()
    const port = (vite.httpServer?.address() as AddressInfo).port
    return { url: `http://127.0.0.1:${port}`, vite, close: () => vite.close() }
  } finally {
    if (before === undefined) delete process.env.API_URL
    else process.env.API_URL = before
  }
}
