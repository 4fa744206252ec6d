import type { IncomingMessage, ServerResponse } from 'node:http'
import { DEFAULT_LIMITS, DEFAULT_PREFIX } from '../protocol'
import type { ServedUniverse } from './authoritativeUniverse'
import { utf8Length } from './bytes'
import { DISCARD_MS, discardBudget } from './limits'
import { readNodeBody } from './nodeBody'
import { streamToNodeResponse } from './nodeStream'
import { SSE_HEADERS } from './sse'
import {
  JSON_HEADERS,
  SyncServer,
  type SyncServerOptions,
  splitTarget,
  targetPath,
  type ZunoRequest,
  type ZunoResponse,
} from './syncServer'

/** Options of {@link createNodeHandler}. */
export interface NodeHandlerOptions extends SyncServerOptions {
  /**
   * Where the endpoints live in `req.url`. Default `/zuno`; `''` under a framework that strips the
   * mount path (Express's `app.use('/zuno', …)`).
   */
  prefix?: string
}

/** A `node:http` request listener (or Connect/Express middleware), plus the sync server behind it. */
export interface NodeHandler {
  /** Requests outside the prefix go to `next` when given, else get a 404 JSON error. */
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void
  /** The transport-neutral server this handler translates for. */
  readonly server: SyncServer
  /** Ends every open SSE stream at once. */
  close(): void
  /** Graceful: new requests get 503 `shutting_down`, proposals in flight finish, streams end with a retry hint. */
  shutdown(): Promise<void>
}

/**
 * Serves a universe on Node's `http` module: `createServer(createNodeHandler(universe))`. It owns
 * what a Node transport must get right: stream places given back on every path (also when the
 * client leaves while `authenticate` or the storage's start is pending), backpressure, a 413 the
 * client can read, and shutdown. A body that a framework already parsed (`req.body`) is used as it is.
 */
export function createNodeHandler(universe: ServedUniverse, options: NodeHandlerOptions = {}): NodeHandler {
  const server = new SyncServer(universe, options)
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '')
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes
  const handler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void => {
    let path = targetPath(req.url ?? '')
    if (prefix !== '') {
      const inside = path.startsWith(prefix) && (path.length === prefix.length || path[prefix.length] === '/')
      if (!inside && next !== undefined) return next()
      path = inside ? path.slice(prefix.length) : ''
    }
    // `handle` never rejects: every failure is an answer already.
    void server.handle(new NodeRequest(req, path)).then((response) => send(req, res, response))
  }

  function send(req: IncomingMessage, res: ServerResponse, response: ZunoResponse): void {
    // The client may have left during any await before this one: its stream place goes back.
    const gone = res.destroyed || res.socket === null || res.socket.destroyed
    if (response.kind === 'sse') {
      if (gone) return response.cancel()
      req.socket.setTimeout(0)
      req.socket.setNoDelay(true)
      // Set one by one so middleware such as `compression` sees `no-transform` and leaves the stream alone.
      for (const name in SSE_HEADERS) res.setHeader(name, SSE_HEADERS[name] as string)
      res.statusCode = 200
      res.flushHeaders()
      streamToNodeResponse(res, response.open)
      return
    }
    if (gone || res.headersSent) return
    // A declared length spares the client chunked decoding and the server a write per chunk.
    const headers = JSON_HEADER_LIST.concat('content-length', String(utf8Length(response.body)))
    if (response.headers !== undefined) for (const name in response.headers) headers.push(name, response.headers[name] as string)
    const tooLarge = response.status === 413 && !req.complete
    // Tell clients (and their connection pools) not to send more on this connection.
    if (tooLarge || server.shuttingDown) headers.push('connection', 'close')
    res.writeHead(response.status, headers)
    if (!tooLarge) return void res.end(response.body)
    // The body is still arriving. Closing now would reset the connection under a client that is
    // still sending, which then reports EPIPE instead of the 413: send the whole answer, read and
    // drop the rest (bounded in bytes and time), and only then close.
    res.write(response.body)
    discardThenEnd(req, res, discardBudget(maxBodyBytes))
  }

  return Object.assign(handler, { server, close: () => server.close(), shutdown: () => server.shutdown() })
}

/** The JSON headers as `writeHead` takes them fastest: a flat list of names and values. */
const JSON_HEADER_LIST: readonly string[] = Object.entries(JSON_HEADERS).flat()

/** A Node request as the sync server reads it; methods, not per-request closures, on the hot path. */
class NodeRequest implements ZunoRequest {
  readonly method: string
  readonly parsedBody: unknown
  readonly peer: string | undefined
  #query: URLSearchParams | undefined

  constructor(
    readonly req: IncomingMessage,
    readonly path: string,
  ) {
    this.method = req.method ?? 'GET'
    // What a body parser mounted before (`express.json()`) made of the body, if anything.
    this.parsedBody = (req as { body?: unknown }).body
    this.peer = req.socket.remoteAddress
  }

  /** Parsed when first read: a proposal, which has no query, never builds one. */
  get query(): URLSearchParams {
    return (this.#query ??= splitTarget(this.req.url ?? '').query)
  }

  header(name: string): string | undefined {
    const value = this.req.headers[name]
    // Node gives repeated headers (other than `set-cookie`) joined already.
    return Array.isArray(value) ? value.join(', ') : value
  }

  readBody(limit: number): Promise<string> {
    return readNodeBody(this.req, limit)
  }
}

/** Reads and drops what is left of a request body, up to `budget` bytes or `DISCARD_MS`, then ends the response. */
function discardThenEnd(req: IncomingMessage, res: ServerResponse, budget: number): void {
  let left = budget
  const done = () => {
    if (res.writableEnded) return
    clearTimeout(timer)
    req.off('data', count)
    res.end()
  }
  const count = (chunk: Uint8Array) => {
    left -= chunk.byteLength
    if (left < 0) done()
  }
  const timer = setTimeout(done, DISCARD_MS)
  req.on('data', count)
  req.once('end', done)
  req.once('close', done)
  req.resume()
}
