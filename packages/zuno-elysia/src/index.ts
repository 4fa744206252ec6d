/**
 * `zuno-elysia`: An Elysia plugin over core's web-standard handler, for Bun or for Node.js through `@elysiajs/node`.
 *
 * @module zuno-elysia
 */
import { Elysia } from 'elysia'
import { createFetchHandler, type FetchHandlerOptions, type PeerSource, type ServedUniverse, type SyncServer } from 'zuno/server'

/** Options of {@link zuno}: where to mount, and the sync server's limits and timings. */
export type ZunoElysiaOptions = FetchHandlerOptions

/**
 * An Elysia plugin serving a universe: `app.use(zuno(universe))` adds `POST /zuno/sync`,
 * `GET /zuno/sse` and `GET /zuno/state`. The work is core's web-standard handler; Elysia routes to it
 * with body parsing off, so the handler reads (and limits) the raw body itself.
 */
export function zuno(universe: ServedUniverse, options: ZunoElysiaOptions = {}) {
  const prefix = (options.prefix ?? '/zuno').replace(/\/+$/, '')
  const handler = createFetchHandler(universe, { ...options, prefix })
  // Elysia's `server` (Bun's) knows the client's address, which anonymous limits are kept by.
  const route = ({ request, server }: { request: Request; server: PeerSource | null }) => handler(request, server)
  const plugin = new Elysia({ name: 'zuno', seed: prefix })
    .all(prefix, route, { parse: 'none' })
    .all(`${prefix}/*`, route, { parse: 'none' })
  return Object.assign(plugin, {
    /** The transport-neutral server behind the plugin. */
    zunoServer: handler.server as SyncServer,
    /** Ends every open SSE stream at once, before the app stops. */
    closeStreams: () => handler.close(),
    /** Graceful: refuse new requests, finish proposals in flight, end streams with a retry hint. */
    shutdown: () => handler.shutdown(),
  })
}
