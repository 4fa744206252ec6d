import { isZunoError, ZunoError } from '../errors'
import {
  DEFAULT_LIMITS,
  PATHS,
  parseStoreList,
  STORE_KEY_PATTERN,
  type SyncAccepted,
  type SyncConflict,
} from '../protocol'
import type { AuthoritativeUniverse } from './authoritativeUniverse'
import { Hub, type SseSink, type Subscription } from './hub'
import { encodeRetryHint, encodeSnapshotFrame, HEARTBEAT_FRAME } from './sse'
import { isJsonContentType, parseProposalText, validateProposal, valueExceedsDepth } from './validate'

/** Options shared by every adapter. */
export interface SyncServerOptions {
  /** Largest `POST /sync` body in bytes (413 above). Default 1 MiB. */
  maxBodyBytes?: number
  /** Deepest JSON nesting accepted (400 `too_deep` above). Default 64. */
  maxDepth?: number
  /** Interval of SSE heartbeat comments in ms; below Bun's 10 s idle timeout. Default 5,000. */
  heartbeatMs?: number
  /** The `retry:` hint sent to SSE clients, in ms. Default 1,000. */
  retryMs?: number
  /** Bytes queued for a stalled SSE subscriber before it is dropped to resume later. Default 4 MiB. */
  maxQueuedBytes?: number
}

/** A request as the engine needs it; each adapter builds one from its framework's request. */
export interface ZunoRequest {
  method: string
  /** Path below the mount prefix, such as `/sync`. */
  path: string
  query: URLSearchParams
  /** A request header by lower-case name. */
  header(name: string): string | null | undefined
  /** Reads the raw body as text; rejects with `payload_too_large` past `limit` bytes. */
  readBody(limit: number): Promise<string>
  /**
   * A body the framework already read: a parsed JSON value, or the raw text as a string.
   * When present, `readBody` is not called.
   */
  parsedBody?: unknown
}

/** What the adapter sends back. */
export type ZunoResponse =
  | { kind: 'json'; status: number; body: string; headers?: Record<string, string> }
  /** An SSE stream: send `SSE_HEADERS` with status 200, then call `open` with the transport. */
  | { kind: 'sse'; open(sink: SseSink): Subscription }

/**
 * Splits a request target (`/sse?stores=a`) into path and query, never throwing: a target that is
 * not a URL gets an empty path, which is answered 404.
 */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  try {
    const url = new URL(target, 'http://zuno.invalid')
    return { path: url.pathname, query: url.searchParams }
  } catch {
    return { path: '', query: new URLSearchParams() }
  }
}

/** The JSON headers of every non-stream answer. */
export const JSON_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
}

/**
 * The transport-neutral server: routes a {@link ZunoRequest} to the protocol's endpoints and
 * fans accepted changes out to SSE subscribers. Adapters only translate requests and responses.
 */
export class SyncServer {
  readonly #universe: AuthoritativeUniverse
  readonly #hub: Hub
  readonly #maxBodyBytes: number
  readonly #maxDepth: number
  readonly #retryHint: Uint8Array
  readonly #stopFollowing: () => void
  /** The unfiltered snapshot frame, reused until the next commit. */
  #snapshotCache: { cursor: string; frame: Uint8Array } | undefined

  constructor(universe: AuthoritativeUniverse, options: SyncServerOptions = {}) {
    this.#universe = universe
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes
    this.#maxDepth = options.maxDepth ?? DEFAULT_LIMITS.maxDepth
    this.#retryHint = encodeRetryHint(options.retryMs ?? 1000)
    this.#hub = new Hub(
      { heartbeatMs: options.heartbeatMs ?? 5000, maxQueuedBytes: options.maxQueuedBytes ?? 4 * 1024 * 1024 },
      HEARTBEAT_FRAME,
    )
    this.#stopFollowing = universe.onCommit((entry) => this.#hub.publish(entry))
  }

  /** Number of open SSE streams. */
  get streams(): number {
    return this.#hub.size
  }

  /** Answers one request. Never rejects: every failure becomes a JSON error response. */
  async handle(request: ZunoRequest): Promise<ZunoResponse> {
    try {
      switch (request.path) {
        case PATHS.sync:
          return request.method === 'POST' ? await this.#sync(request) : methodNotAllowed('POST')
        case PATHS.sse:
          return request.method === 'GET' ? await this.#sse(request) : methodNotAllowed('GET')
        case PATHS.state:
          return request.method === 'GET' ? await this.#state(request) : methodNotAllowed('GET')
        default:
          throw new ZunoError('not_found', `No Zuno endpoint at ${JSON.stringify(request.path)}`)
      }
    } catch (error) {
      return errorResponse(error)
    }
  }

  /** Ends every stream (clients reconnect) and stops following the universe. */
  close(): void {
    this.#stopFollowing()
    this.#hub.closeAll()
  }

  async #sync(request: ZunoRequest): Promise<ZunoResponse> {
    if (!isJsonContentType(request.header('content-type'))) {
      throw new ZunoError('unsupported_media_type', 'POST /sync takes Content-Type: application/json')
    }
    const proposal = await this.#readProposal(request)
    const outcome = await this.#universe.propose(proposal)
    if (outcome.type === 'conflict') {
      const body: SyncConflict = {
        ok: false,
        error: 'conflict',
        storeKey: proposal.storeKey,
        version: outcome.version,
        state: outcome.state,
      }
      return json(409, body)
    }
    const committed = outcome.type === 'accepted' ? outcome.event : outcome
    const body: SyncAccepted = { ok: true, storeKey: proposal.storeKey, version: committed.version, state: committed.state }
    return json(200, body)
  }

  async #readProposal(request: ZunoRequest) {
    const lengthHeader = request.header('content-length')
    const declared = Number(lengthHeader ?? 0)
    if (declared > this.#maxBodyBytes) throw tooLarge(this.#maxBodyBytes)
    // Some parsers turn an empty body into `{}`; empty is empty, whatever was made of it.
    const parsedBody = lengthHeader === '0' ? '' : request.parsedBody
    if (typeof parsedBody === 'string') return parseProposalText(parsedBody, this.#maxDepth)
    if (parsedBody === undefined) return parseProposalText(await request.readBody(this.#maxBodyBytes), this.#maxDepth)
    // A framework parsed it already: check depth first (iteratively), then, without a declared
    // length, measure what the body would have been.
    if (valueExceedsDepth(parsedBody, this.#maxDepth)) {
      throw new ZunoError('too_deep', `JSON nests deeper than ${this.#maxDepth} levels`)
    }
    if (!declared && utf8Length(JSON.stringify(parsedBody)) > this.#maxBodyBytes) throw tooLarge(this.#maxBodyBytes)
    return validateProposal(parsedBody)
  }

  async #state(request: ZunoRequest): Promise<ZunoResponse> {
    const storeKeys = this.#storeFilter(request)
    await this.#universe.ready
    return json(200, this.#universe.snapshot(storeKeys))
  }

  async #sse(request: ZunoRequest): Promise<ZunoResponse> {
    const storeKeys = this.#storeFilter(request)
    await this.#universe.ready
    // The header wins: EventSource sends it on every reconnect, with a newer id than the URL's.
    const lastEventId = request.header('last-event-id') || request.query.get('lastEventId') || undefined
    const keySet = storeKeys === undefined ? undefined : new Set(storeKeys)
    return {
      kind: 'sse',
      open: (sink) => this.#hub.add(sink, keySet, this.#openingFrames(lastEventId, storeKeys, keySet)),
    }
  }

  /** A replay of what the client missed when the log still has it, else a snapshot. */
  #openingFrames(
    lastEventId: string | undefined,
    storeKeys: readonly string[] | undefined,
    keySet: ReadonlySet<string> | undefined,
  ): Uint8Array[] {
    const missed = lastEventId === undefined ? undefined : this.#universe.since(lastEventId)
    if (missed !== undefined) {
      const frames = [this.#retryHint]
      for (const entry of missed) {
        if (keySet === undefined || keySet.has(entry.event.storeKey)) frames.push(entry.frame)
      }
      return frames
    }
    return [this.#retryHint, this.#snapshotFrame(storeKeys)]
  }

  #snapshotFrame(storeKeys: readonly string[] | undefined): Uint8Array {
    // The full snapshot only changes with a commit, so it is built and encoded once per cursor.
    if (storeKeys === undefined && this.#snapshotCache?.cursor === this.#universe.cursor) {
      return this.#snapshotCache.frame
    }
    const { stores, cursor } = this.#universe.snapshot(storeKeys)
    const frame = encodeSnapshotFrame(cursor, { stores })
    if (storeKeys === undefined) this.#snapshotCache = { cursor, frame }
    return frame
  }

  #storeFilter(request: ZunoRequest): string[] | undefined {
    const storeKeys = parseStoreList(request.query.get('stores'))
    if (storeKeys === undefined) return undefined
    if (storeKeys.length > 1000) throw new ZunoError('invalid_store_key', 'At most 1,000 stores per request')
    for (const key of storeKeys) {
      if (!STORE_KEY_PATTERN.test(key)) {
        throw new ZunoError('invalid_store_key', `Invalid store key ${JSON.stringify(key.slice(0, 200))}`)
      }
    }
    return storeKeys
  }
}

const encoder = new TextEncoder()
function utf8Length(text: string | undefined): number {
  return text === undefined ? 0 : encoder.encode(text).byteLength
}

function json(status: number, body: unknown): ZunoResponse & { kind: 'json' } {
  return { kind: 'json', status, body: JSON.stringify(body) }
}

function methodNotAllowed(allow: string): ZunoResponse {
  const error = new ZunoError('method_not_allowed', `Use ${allow}`)
  return { ...json(error.status, error.toBody()), headers: { allow } }
}

/** The `payload_too_large` error; adapters throw it from `readBody`. */
export function tooLarge(limit: number): ZunoError {
  return new ZunoError('payload_too_large', `The body is larger than ${limit} bytes`)
}

/** Turns anything thrown into a JSON error; unexpected failures become 503 and are reported. */
export function errorResponse(error: unknown): ZunoResponse {
  if (isZunoError(error) && error.status >= 400) return json(error.status, error.toBody())
  // Not a client's fault, and not a crash: say "try again" and let the host see what happened.
  console.error('[zuno] unexpected error while handling a request', error)
  return json(503, { ok: false, error: 'unavailable', message: 'The server could not handle the request; try again' })
}
