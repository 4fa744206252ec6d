import { ZunoError } from '../errors'
import { DEFAULT_LIMITS, DEFAULT_PREFIX } from '../protocol'
import type { ServedUniverse } from './authoritativeUniverse'
import type { Subscription } from './hub'
import { DISCARD_MS, discardBudget } from './limits'
import { SSE_HEADERS } from './sse'
import { JSON_HEADERS, SyncServer, type SyncServerOptions, tooLarge, type ZunoResponse } from './syncServer'

/** Options of {@link createFetchHandler}. */
export interface FetchHandlerOptions extends SyncServerOptions {
  /** Where the endpoints live. Default `/zuno`. */
  prefix?: string
}

/** What a runtime may pass beside the request: Bun's server, which knows the client's address. */
export interface PeerSource {
  /** Bun's `server.requestIP`: the fetch API itself has no notion of the client's address. */
  requestIP?(request: Request): {
    /** The client's IP address. */
    address: string
  } | null | undefined
}

/** A web-standard handler, plus the sync server behind it. */
export interface FetchHandler {
  /** `server` (Bun passes its own) gives the peer address that anonymous limits are kept by. */
  (request: Request, server?: PeerSource | null): Promise<Response>
  /** The transport-neutral server this handler translates for. */
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
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes
  const handler = async (request: Request, runtime?: PeerSource | null): Promise<Response> => {
    const { pathname, query } = splitRequestUrl(request.url)
    const path = pathname.startsWith(prefix) ? pathname.slice(prefix.length) : ''
    let bodyRead = false
    const response = await server.handle({
      method: request.method,
      path,
      query,
      header: (name) => request.headers.get(name),
      readBody: (limit) => {
        bodyRead = true
        return readRequestBody(request, limit)
      },
      peer: peerOf(request, runtime),
    })
    // A refused body still arriving: read and drop it (bounded) first, or the runtime closes the
    // connection under a client that is still sending, which then sees EPIPE instead of the 413.
    if (response.kind === 'json' && response.status === 413 && !bodyRead && request.body !== null && !request.bodyUsed) {
      await discardRest(request.body.getReader(), declaredRest(request, 0, maxBodyBytes))
    }
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
  // The client left while the answer was being prepared: give its stream place back.
  if (signal?.aborted) {
    response.cancel()
    return new Response(null, { status: 499 })
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

/** The client's address: from Bun's server, or a `request.ip` (srvx, behind `@elysiajs/node`); else unknown. */
function peerOf(request: Request, runtime: PeerSource | null | undefined): string | undefined {
  try {
    const address = runtime?.requestIP?.(request)?.address
    if (address) return address
  } catch {
    // Runtimes that imitate Bun's server may throw here (Elysia's Node adapter does).
  }
  const ip = (request as { ip?: unknown }).ip
  return typeof ip === 'string' && ip !== '' ? ip : undefined
}

/**
 * How much of a refused body is left to drop: what its declared length says, when that is within
 * the budget. A body of unknown or larger length is not read on: it may never end.
 */
function declaredRest(request: Request, read: number, limit: number): number {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN)
  return Number.isSafeInteger(declared) && declared <= discardBudget(limit) ? declared - read : 0
}

/** Reads and drops what is left of a body, up to `budget` bytes and for at most `DISCARD_MS`, then cancels it. */
async function discardRest(reader: ReadableStreamDefaultReader<Uint8Array>, budget: number): Promise<void> {
  // A client that stalls mid-body must not hold the answer: cancelling ends the pending read.
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), DISCARD_MS)
  try {
    for (let left = budget; left > 0; ) {
      const { done, value } = await reader.read()
      if (done) return
      left -= value.byteLength
    }
  } catch {
    // The client went away: nothing left to read.
  } finally {
    clearTimeout(timer)
    reader.cancel().catch(() => {})
  }
}

/** Reads a request body as text, refusing it past `limit` bytes (the rest is read and dropped, bounded). */
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
      await discardRest(reader, declaredRest(request, bytes, limit))
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
