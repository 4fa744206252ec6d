import { ZunoError } from '../errors'
import { DEFAULT_PREFIX } from '../protocol'
import type { ServedUniverse } from './authoritativeUniverse'
import type { Subscription } from './hub'
import { SSE_HEADERS } from './sse'
import { JSON_HEADERS, SyncServer, type SyncServerOptions, tooLarge, type ZunoResponse } from './syncServer'

/** Options of {@link createFetchHandler}. */
export interface FetchHandlerOptions extends SyncServerOptions {
  /** Where the endpoints live. Default `/zuno`. */
  prefix?: string
}

/** A web-standard handler, plus the sync server behind it. */
export interface FetchHandler {
  (request: Request): Promise<Response>
  readonly server: SyncServer
  /** Ends every open SSE stream. */
  close(): void
  /** Graceful: refuse new requests, finish proposals in flight, end streams with a retry hint. */
  shutdown(): Promise<void>
}

/**
 * Serves a universe to any fetch runtime: `Bun.serve({ fetch: handler })`, Deno, Hono, Next.js
 * route handlers, Cloudflare-style workers. Requests outside the prefix get a 404 JSON error.
 */
export function createFetchHandler(universe: ServedUniverse, options: FetchHandlerOptions = {}): FetchHandler {
  const server = new SyncServer(universe, options)
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '')
  const handler = async (request: Request): Promise<Response> => {
    const { pathname, query } = splitRequestUrl(request.url)
    const path = pathname.startsWith(prefix) ? pathname.slice(prefix.length) : ''
    const response = await server.handle({
      method: request.method,
      path,
      query,
      header: (name) => request.headers.get(name),
      readBody: (limit) => readRequestBody(request, limit),
    })
    // Reading `request.signal` makes some runtimes (Bun) build an AbortSignal: only streams need one.
    return toResponse(response, response.kind === 'sse' ? request.signal : undefined)
  }
  return Object.assign(handler, { server, close: () => server.close(), shutdown: () => server.shutdown() })
}

/** Turns the engine's answer into a web `Response`; an SSE stream is pulled by the runtime as it drains. */
export function toResponse(response: ZunoResponse, signal?: AbortSignal): Response {
  if (response.kind === 'json') {
    const headers = response.headers === undefined ? JSON_HEADERS : { ...JSON_HEADERS, ...response.headers }
    return new Response(response.body, { status: response.status, headers })
  }
  let subscription: Subscription | undefined
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        subscription = response.open({
          write(chunk) {
            controller.enqueue(chunk)
            return (controller.desiredSize ?? 0) > 0
          },
          close() {
            subscription?.close()
            try {
              controller.close()
            } catch {
              // Already closed by the client.
            }
          },
        })
        signal?.addEventListener('abort', () => subscription?.close(), { once: true })
      },
      pull() {
        subscription?.drained()
      },
      cancel() {
        subscription?.close()
      },
    },
    // Counted in bytes, so back-pressure starts at 64 KiB queued, like a socket buffer.
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  )
  return new Response(stream, { status: 200, headers: SSE_HEADERS })
}

/** Reads a request body as text, refusing it past `limit` bytes without reading the rest. */
export async function readRequestBody(request: Request, limit: number): Promise<string> {
  if (request.body === null) return ''
  const declared = Number(request.headers.get('content-length') ?? Number.NaN)
  if (Number.isSafeInteger(declared) && declared <= limit) {
    // The runtime reads no more than the declared length, and natively: much faster than a reader.
    return request.text().catch((error: unknown) => {
      throw new ZunoError('invalid_body', 'The request body could not be read', { cause: error })
    })
  }
  const reader = request.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  for (;;) {
    const { done, value } = await reader.read().catch((error: unknown) => {
      throw new ZunoError('invalid_body', 'The request body could not be read', { cause: error })
    })
    if (done) return text + decoder.decode()
    bytes += value.byteLength
    if (bytes > limit) {
      await reader.cancel().catch(() => {})
      throw tooLarge(limit)
    }
    text += decoder.decode(value, { stream: true })
  }
}

/**
 * The path and query of a `Request`'s URL, which the runtime has already parsed and normalized,
 * so slicing the string gives what `new URL()` would, without building one per request.
 */
function splitRequestUrl(url: string): { pathname: string; query: URLSearchParams } {
  const pathStart = url.indexOf('/', url.indexOf('//') + 2)
  if (pathStart < 0) return { pathname: '/', query: new URLSearchParams() }
  const question = url.indexOf('?', pathStart)
  const hash = url.indexOf('#', pathStart)
  const end = hash < 0 ? url.length : hash
  if (question < 0 || question > end) return { pathname: url.slice(pathStart, end), query: new URLSearchParams() }
  return { pathname: url.slice(pathStart, question), query: new URLSearchParams(url.slice(question + 1, end)) }
}
