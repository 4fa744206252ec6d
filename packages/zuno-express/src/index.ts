import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express'
import {
  type ServedUniverse,
  errorResponse,
  JSON_HEADERS,
  readNodeBody,
  SSE_HEADERS,
  SyncServer,
  type SyncServerOptions,
  splitTarget,
  streamToNodeResponse,
  type ZunoResponse,
} from 'zuno/server'
import { type ErrorCode, ZunoError } from 'zuno'

/** Options of {@link zuno}: the limits and timings of the sync server. */
export type ZunoExpressOptions = SyncServerOptions

/**
 * What `app.use` takes: the endpoints, then a handler that turns the errors of a body parser
 * mounted before them into Zuno's JSON errors (Express passes errors only to 4-argument handlers).
 */
export interface ZunoMiddleware extends Array<RequestHandler | ErrorRequestHandler> {
  /** The transport-neutral server this middleware translates for. */
  readonly server: SyncServer
  /** Ends every open SSE stream at once; call it before `httpServer.close()` so shutdown is not held open. */
  close(): void
  /**
   * Graceful shutdown: new requests get 503, proposals in flight finish, streams end with a retry
   * hint. Then `httpServer.close()`.
   */
  shutdown(): Promise<void>
}

/** What body-parser attaches to the errors it passes on. */
interface BodyParserError {
  type?: string
  status?: number
  body?: unknown
}

/** Zuno's code for each client error a body parser can report. */
const PARSER_ERRORS: Record<number, ErrorCode> = { 413: 'payload_too_large', 415: 'unsupported_media_type' }

/**
 * Serves a universe over Zuno's protocol: mount it at the prefix, `app.use('/zuno', zuno(universe))`.
 * It reads bodies itself; after `express.json()` it uses the parsed body, and turns that parser's
 * errors into Zuno's JSON errors.
 */
export function zuno(universe: ServedUniverse, options: ZunoExpressOptions = {}): ZunoMiddleware {
  const server = new SyncServer(universe, options)
  const handle = (req: Request, res: Response, next: NextFunction, parsedBody: unknown): void => {
    const { path, query } = splitTarget(req.url)
    server
      .handle({
        method: req.method,
        path,
        query,
        header: (name) => headerValue(req.headers[name]),
        readBody: (limit) => readNodeBody(req, limit),
        parsedBody,
      })
      .then((response) => send(req, res, response), next)
  }
  const endpoints: RequestHandler = (req, res, next) => handle(req, res, next, req.body)
  const parserErrors: ErrorRequestHandler = (error: unknown, req, res, next) => {
    const { type, status, body } = (error ?? {}) as BodyParserError
    if (type === undefined || status === undefined || status < 400 || status >= 500) return next(error)
    // A parser mounted before us failed: judge the raw text ourselves, as if we had read it.
    if (type === 'entity.parse.failed' && typeof body === 'string') return handle(req, res, next, body)
    const code = PARSER_ERRORS[status] ?? 'invalid_body'
    send(req, res, errorResponse(new ZunoError(code, `The request body was refused (${type})`)))
  }
  return Object.assign([endpoints, parserErrors], { server, close: () => server.close(), shutdown: () => server.shutdown() })
}

function send(req: Request, res: Response, response: ZunoResponse): void {
  if (response.kind === 'json') {
    // A declared length spares the client chunked decoding and the server a write per chunk.
    const headers: Record<string, string | number> = {
      ...JSON_HEADERS,
      'content-length': Buffer.byteLength(response.body),
      ...response.headers,
    }
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
  streamToNodeResponse(res, response.open)
}

/** One header's value; Node gives repeated headers (other than `set-cookie`) joined already. */
function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}
