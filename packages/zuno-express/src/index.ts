import type { NextFunction, Request, RequestHandler, Response } from 'express'
import {
  type AuthoritativeUniverse,
  JSON_HEADERS,
  readNodeBody,
  SSE_HEADERS,
  SyncServer,
  type SyncServerOptions,
  type ZunoResponse,
} from 'zuno/server'

/** Options of {@link zuno}: the limits and timings of the sync server. */
export type ZunoExpressOptions = SyncServerOptions

/** The middleware, plus a handle on the sync server behind it. */
export interface ZunoMiddleware extends RequestHandler {
  /** The transport-neutral server this middleware translates for. */
  readonly server: SyncServer
  /** Ends every open SSE stream; call it before `httpServer.close()` so shutdown is not held open. */
  close(): void
}

/**
 * Serves a universe over Zuno's protocol: mount it at the prefix, `app.use('/zuno', zuno(universe))`.
 * Mount it before body parsers, or after `express.json()`: a body that was already parsed is used as is.
 */
export function zuno(universe: AuthoritativeUniverse, options: ZunoExpressOptions = {}): ZunoMiddleware {
  const server = new SyncServer(universe, options)
  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    const url = new URL(req.url, 'http://zuno.invalid')
    server
      .handle({
        method: req.method,
        path: url.pathname,
        query: url.searchParams,
        header: (name) => req.get(name),
        readBody: (limit) => readNodeBody(req, limit),
        parsedBody: req.body,
      })
      .then((response) => send(req, res, response), next)
  }
  return Object.assign(middleware, { server, close: () => server.close() })
}

function send(req: Request, res: Response, response: ZunoResponse): void {
  if (response.kind === 'json') {
    const headers: Record<string, string> = { ...JSON_HEADERS, ...response.headers }
    // After a 413 the rest of the body is still arriving; closing is cheaper than reading it.
    if (response.status === 413) headers.connection = 'close'
    res.writeHead(response.status, headers).end(response.body)
    return
  }
  if (res.destroyed) return
  req.socket.setTimeout(0)
  req.socket.setNoDelay(true)
  // Set one by one so middleware such as `compression` sees `no-transform` and leaves the stream alone.
  for (const [name, value] of Object.entries(SSE_HEADERS)) res.setHeader(name, value)
  res.status(200).flushHeaders()
  const flush = (res as Response & { flush?: () => void }).flush?.bind(res)
  const subscription = response.open({
    write(chunk) {
      const ok = res.write(chunk)
      flush?.()
      return ok
    },
    close: () => res.end(),
  })
  res.on('drain', () => subscription.drained())
  res.on('close', () => subscription.close())
}
