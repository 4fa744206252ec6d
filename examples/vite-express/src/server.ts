/** The app's Express server: its own API, Zuno beside it and, in production, the client that Vite built. */
import compression from 'compression'
import express, { type Express } from 'express'
import type { StatesOfApp } from 'zuno'
import { type AuthoritativeUniverse, createUniverse } from 'zuno/server'
import { type ZunoMiddleware, zuno } from 'zuno-express'
import { app } from './app'

export interface ApiServer {
  server: Express
  universe: AuthoritativeUniverse<StatesOfApp<typeof app>, never>
  sync: ZunoMiddleware
}

export function createApiServer(options: { dist?: string } = {}): ApiServer {
  const universe = createUniverse({ app })
  const sync = zuno(universe)
  const server = express()

  // The app had compression, a JSON body parser and its own API; Zuno goes before the parser,
  // which would otherwise refuse writes over its own 100 KB limit (Zuno's maxBodyBytes is 1 MiB).
  server.use(compression())
  server.use('/zuno', sync) // GET /zuno/sse streams the changes, POST /zuno/sync takes the writes.
  server.use(express.json())
  server.get('/api/hello', (_req, res) => {
    res.json({ message: 'Hello from Express' })
  })

  // In production Express serves the client too: what `vite build` wrote to dist/.
  if (options.dist !== undefined) server.use(express.static(options.dist))

  return { server, universe, sync }
}
