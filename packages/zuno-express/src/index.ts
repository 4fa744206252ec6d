/**
 * `zuno-express`: Express middleware over core's `node:http` handler; it adds only what Express needs, the errors of a body parser mounted first.
 *
 * @module zuno-express
 */
import type { ErrorRequestHandler, RequestHandler } from 'express'
import { type ErrorCode, ZunoError } from 'zuno'
import { createNodeHandler, errorResponse, JSON_HEADERS, type NodeHandlerOptions, type ServedUniverse, type SyncServer } from 'zuno/server'

/** Options of {@link zuno}: the limits and timings of the sync server. */
export type ZunoExpressOptions = Omit<NodeHandlerOptions, 'prefix'>

/**
 * What `app.use` takes: the endpoints, then a handler that turns the errors of a body parser
 * mounted before them into Zuno's JSON errors (Express passes errors only to 4-argument handlers).
 */
export interface ZunoMiddleware extends Array<RequestHandler | ErrorRequestHandler> {
  /** The transport-neutral server this middleware translates for. */
  readonly server: SyncServer
  /** Ends every open SSE stream at once; call it before `httpServer.close()` so shutdown is not held open. */
  close(): void
  /** Graceful shutdown: new requests get 503, proposals in flight finish, streams end with a retry hint. Then `httpServer.close()`. */
  shutdown(): Promise<void>
}

/** Zuno's code for each client error a body parser can report. */
const PARSER_ERRORS: Record<number, ErrorCode> = { 413: 'payload_too_large', 415: 'unsupported_media_type' }

/**
 * Serves a universe over Zuno's protocol: mount it at the prefix, `app.use('/zuno', zuno(universe))`.
 * Core's `node:http` handler does the work; after `express.json()` it uses the parsed body, and a
 * parser's errors become Zuno's JSON errors.
 */
export function zuno(universe: ServedUniverse, options: ZunoExpressOptions = {}): ZunoMiddleware {
  const handler = createNodeHandler(universe, { ...options, prefix: '' })
  const endpoints: RequestHandler = (req, res) => handler(req, res)
  const parserErrors: ErrorRequestHandler = (error: unknown, req, res, next) => {
    const { type, status, body } = (error ?? {}) as { type?: string; status?: number; body?: unknown }
    if (type === undefined || status === undefined || status < 400 || status >= 500) return next(error)
    // A parser mounted before us failed: judge the raw text ourselves, as if we had read it.
    if (type === 'entity.parse.failed' && typeof body === 'string') {
      req.body = body
      return handler(req, res)
    }
    const answer = errorResponse(new ZunoError(PARSER_ERRORS[status] ?? 'invalid_body', `The request body was refused (${type})`))
    if (answer.kind === 'json') res.status(answer.status).set(JSON_HEADERS).send(answer.body)
  }
  return Object.assign([endpoints, parserErrors], {
    server: handler.server,
    close: () => handler.close(),
    shutdown: () => handler.shutdown(),
  })
}
