import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { node } from '@elysiajs/node'
import { Elysia } from 'elysia'
import { createUniverse } from 'zuno/server'
import { type ConformanceConfig, type RunningTarget, serverOptions } from '../../zuno/test/conformance/suite'
import { zuno } from '../src/index'
import { freePort } from '../../zuno/test/support/freePort'
import { conformanceActions } from '../../zuno/test/conformance/actions'

/** The real Bun binary that the `bun` npm package installs. */
export const bunPath = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url))
export const haveBun = existsSync(bunPath)
if (!haveBun && process.env.CI) throw new Error(`Bun is required in CI and missing at ${bunPath}`)

const fixture = fileURLToPath(new URL('./fixtures/bunServer.ts', import.meta.url))

/** Starts the fixture under Bun: Elysia, or core's fetch handler on Bun.serve. */
export function startOnBun(
  target: 'elysia' | 'fetch',
  config: Partial<ConformanceConfig>,
  env: Record<string, string> = {},
): Promise<RunningTarget & { child: ChildProcess }> {
  const child = spawn(bunPath, [fixture], {
    env: { ...process.env, ...env, TARGET: target, ZUNO_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    let output = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const port = /READY (\d+)/.exec(output)?.[1]
      if (port === undefined) return
      resolve({
        child,
        url: `http://127.0.0.1:${port}/zuno`,
        // The fixture shuts its sync server down when asked on a debug route.
        shutdown: async () => {
          await (await fetch(`http://127.0.0.1:${port}/debug/shutdown`, { method: 'POST' })).text()
        },
        close: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done()
            child.once('exit', () => done())
            child.kill('SIGKILL')
          }),
      })
    })
    child.once('exit', (code) => reject(new Error(`bun exited with ${code} before it was ready`)))
  })
}

/** Where @elysiajs/node keeps the Node.js server it made. */
interface NodeServerHandle {
  node?: { server?: { closeAllConnections(): void } }
}


/** Starts Elysia on Node.js (through @elysiajs/node) in this process. */
export async function startElysiaOnNode(config: ConformanceConfig): Promise<RunningTarget & { streams(): number }> {
  const universe = createUniverse({
    stores: config.stores,
    allowStore: (key) => key.startsWith(config.creatablePrefix),
    retention: config.retention,
    actions: conformanceActions,
  })
  const plugin = zuno(universe, serverOptions(config))
  const app = new Elysia({ adapter: node() }).use(plugin)
  // The Node adapter reports the port it was given, so give it a free one.
  const port = await freePort()
  const server = await new Promise<{ stop(): Promise<void> | void; raw?: NodeServerHandle }>((resolve) =>
    app.listen({ hostname: '127.0.0.1', port }, (info) => resolve(info as never)),
  )
  return {
    url: `http://127.0.0.1:${port}/zuno`,
    streams: () => plugin.zunoServer.streams,
    shutdown: () => plugin.shutdown(),
    async close() {
      plugin.closeStreams()
      server.raw?.node?.server?.closeAllConnections()
      await server.stop()
      await universe.close()
    },
  }
}
