import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import express from 'express'
import { type AuthoritativeUniverse, createUniverse } from 'zuno/server'
import { zuno } from 'zuno-express'

/** One todo item of the demo. */
export interface Todo {
  id: string
  text: string
  done: boolean
}

/** The demo's stores and their initial states. */
export const demoStores = { counter: 0, todos: [] as Todo[] }

/** A running demo. */
export interface DemoServer {
  universe: AuthoritativeUniverse
  server: Server
  url: string
  close(): Promise<void>
}

const publicDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'public')
// The browser imports the built `zuno` package as it will be published: its ESM files, unbundled.
const zunoDist = join(dirname(createRequire(import.meta.url).resolve('zuno/package.json')), 'dist')

/** Starts the demo on `port` (0 for any free one) on `host`. */
export async function startDemo(port: number, host = '127.0.0.1'): Promise<DemoServer> {
  const universe = createUniverse({ stores: demoStores })
  const sync = zuno(universe)
  const app = express()
  app.use('/zuno', sync)
  app.use('/vendor/zuno', express.static(zunoDist, { fallthrough: false }))
  app.use(express.static(publicDir))

  const server = createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  const address = server.address() as AddressInfo
  return {
    universe,
    server,
    url: `http://${host}:${address.port}`,
    async close() {
      sync.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
    },
  }
}
