import { isZunoError, ZunoError } from '../errors'
import {
  DEFAULT_LIMITS,
  MAX_STORES_PER_STREAM,
  PATHS,
  PRESENCE_LIMITS,
  parseStoreList,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  STORE_KEY_PATTERN,
  type ActionAccepted,
  type ActionRequest,
  type PresenceAccepted,
  type StoreChange,
  type SubscribeAccepted,
  type SyncAccepted,
  type SyncConflict,
} from '../protocol'
import { type Authenticate, type AuthorizeAction, type AuthRequest, type Authorize, type Principal, readCookie } from './auth'
import type { ActionCaller, HeldStores, Proposer, ServedUniverse } from './authoritativeUniverse'
import { utf8Length } from './bytes'
import { Hub, type SseSink, type Subscription } from './hub'
import { RateLimiter, StreamLimiter } from './limits'
import { type PresenceOptions, PresenceRooms, type PresenceSignal, validatePresenceRequest } from './presence'
import {
  encodeCommitFrame,
  encodeFollowedFrame,
  encodeHelloFrame,
  encodeRetryHint,
  encodeRevokedFrame,
  encodeSnapshotFrame,
  HEARTBEAT_FRAME,
  RESUMED_FRAME,
  RESYNC_FRAME,
} from './sse'
import type { Patch } from '../patch'
import { randomBase64url } from '../id'
import { valueExceedsDepth } from './json'
import { ReadRights } from './readRights'
import { StreamControl, validateSubscribeRequest } from './streamControl'
import { checkJsonPayload, isActionRequest, isPatchRequest, isJsonContentType, type Proposal, parseProposalText, textExceedsDepth, validateProposal } from './validate'
import type { LogEntry } from './log'

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
  /** Bytes queued for a stalled SSE subscriber before it is dropped with a resync instruction. Default 4 MiB. */
  maxQueuedBytes?: number
  /**
   * Who is asking: from a cookie, the `Authorization` header or (for SSE) a query token. 401 when it
   * returns nothing. Default: none; every request is anonymous, and limits are kept per peer address.
   */
  authenticate?: Authenticate
  /** Whether the principal may read or write a store (403 when not), beside the app's store rules (both must allow). Default: everything. */
  authorize?: Authorize
  /**
   * Whether the principal may run an action with these arguments (as sent: not yet checked by its schema), before it runs; it must
   * also be allowed every store the action reads and writes (`authorize`). 403 `forbidden` when not,
   * recorded like the action's answer. Default: every action.
   */
  authorizeAction?: AuthorizeAction
  /** Browser origins allowed to call; a request with another `Origin` gets 403. Default: any. */
  allowedOrigins?: readonly string[]
  /** Open SSE streams in all (503 with Retry-After above). Default 10,000. */
  maxStreams?: number
  /** Open SSE streams per authenticated principal. Default 16. */
  maxStreamsPerPrincipal?: number
  /** Proposals a second per principal (or per peer address, when anonymous); bursts of twice as many. Default 50. */
  maxProposalsPerSecond?: number
  /**
   * Take the peer address from the first `X-Forwarded-For` hop instead of the connection. Only
   * behind a proxy that sets that header itself: otherwise any client can claim any address.
   * Default false.
   */
  trustProxy?: boolean
  /**
   * How long a stream that resumes from an event this instance has not applied yet waits for it, in
   * ms. Another instance on the same storage streamed that event, and this one's follow of the
   * storage is behind. Past the bound the stream starts with a snapshot as of this instance's own
   * position; the replica keeps whatever it holds that is newer. Default 3,000.
   */
  resumeWaitMs?: number
  /** Presence: peers per room, the tick that coalesces a room's changes, and how long silent or ended streams' tabs stay (docs/presence.md). */
  presence?: PresenceOptions
  /**
   * `POST /presence` requests a second per stream, bursts of twice as many (429 `rate_limited` past
   * it); as many again per principal (or address, for the anonymous) for streams held by other
   * instances. A replica sends at most 100. Default 100.
   */
  maxPresencePerSecond?: number
  /**
   * Broadcast events a second per stream, bursts of twice as many and at least a request's worth
   * ({@link PRESENCE_LIMITS}`.maxOps`); a request with more than its stream has left is refused
   * whole, 429 `rate_limited`. Bounds what one browser makes every other peer of a room receive.
   * Default 100.
   */
  maxBroadcastsPerSecond?: number
}

/** A request as the engine needs it; each adapter builds one from its framework's request. */
export interface ZunoRequest {
  /** The HTTP method, upper-case. */
  method: string
  /** Path below the mount prefix, such as `/sync`. */
  path: string
  /** The query string, parsed. */
  query: URLSearchParams
  /** A request header by lower-case name. */
  header(name: string): string | null | undefined
  /** Reads the raw body as text; rejects with `payload_too_large` past `limit` bytes. */
  readBody(limit: number): Promise<string>
  /** The client's address (the connection's remote address); anonymous limits are kept per peer. */
  peer?: string | undefined
  /**
   * A body the framework already read: a parsed JSON value, or the raw text as a string.
   * When present, `readBody` is not called.
   */
  parsedBody?: unknown
}

/** What the adapter sends back. */
export type ZunoResponse =
  | {
      /** A complete answer. */
      kind: 'json'
      /** The HTTP status. */
      status: number
      /** The JSON text, encoded once by the core. */
      body: string
      /** Headers besides `JSON_HEADERS`, such as `Retry-After`. */
      headers?: Record<string, string>
    }
  /**
   * An SSE stream: send `SSE_HEADERS` with status 200, then call `open` with the transport; or, when
   * the client has left meanwhile, call `cancel` instead, which gives its place back.
   */
  | {
      /** A stream that stays open. */
      kind: 'sse'
      /** Starts the stream on `sink`; the subscription ends it. */
      open(sink: SseSink): Subscription
      /** Gives back the stream's place when the client left before `open`. */
      cancel(): void
    }

/**
 * Splits a request target (`/sse?stores=a`) into path and query, never throwing: a target that is
 * not a URL gets an empty path, which is answered 404.
 */
export function splitTarget(target: string): {
  /** The path, as the request spelled it. */
  path: string
  /** The query, parsed. */
  query: URLSearchParams
} {
  // The common case, a plain path such as `/sync` or `/sse?stores=a`, needs no URL parser.
  const question = target.indexOf('?')
  const path = question < 0 ? target : target.slice(0, question)
  // (`URLSearchParams` drops a leading `?`, which the URL parser would keep as part of a key.)
  if (PLAIN_PATH.test(path) && PLAIN_TARGET.test(target) && target[question + 1] !== '?') {
    return { path, query: new URLSearchParams(question < 0 ? '' : target.slice(question + 1)) }
  }
  try {
    const url = new URL(target, 'http://zuno.invalid')
    return { path: url.pathname, query: url.searchParams }
  } catch {
    return { path: '', query: new URLSearchParams() }
  }
}

/** The path of a request target, as {@link splitTarget} gives it, without building the query when the target is a plain path. */
export function targetPath(target: string): string {
  return target.indexOf('?') < 0 && PLAIN_PATH.test(target) ? target : splitTarget(target).path
}

/** The method of each endpoint, by path. */
const ALLOWED_METHODS: ReadonlyMap<string, string> = new Map([
  [PATHS.sync, 'POST'],
  [PATHS.sse, 'GET'],
  [PATHS.state, 'GET'],
  [PATHS.subscribe, 'POST'],
  [PATHS.presence, 'POST'],
])

/** A path the URL parser would leave as it is: no dots, escapes or other surprises. */
const PLAIN_PATH = /^(\/[A-Za-z0-9_-]+)+$/
/** A target with nothing the URL parser would trim, encode or cut off: printable ASCII, no `#`. */
const PLAIN_TARGET = /^[!"$-~]*$/

/**
 * The JSON headers of every non-stream answer. No `charset`: JSON is UTF-8 by definition. No
 * `cache-control` either: only `GET /state` answers could be cached, and they carry `no-store` themselves.
 */
export const JSON_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
}

/** What a `GET /state` answer adds: a snapshot must never be served from a cache. */
const NOT_STORED: Readonly<Record<string, string>> = { 'cache-control': 'no-store' }

/**
 * The transport-neutral server: routes a {@link ZunoRequest} to the protocol's endpoints and
 * fans accepted changes out to SSE subscribers. Adapters only translate requests and responses.
 */
export class SyncServer {
  readonly #universe: ServedUniverse
  readonly #hub: Hub
  readonly #maxBodyBytes: number
  readonly #maxDepth: number
  readonly #retryHint: Uint8Array
  readonly #stopFollowing: () => void
  /** The unfiltered snapshot frame, reused until the next commit. */
  #snapshotCache: { cursor: string; frame: Uint8Array } | undefined
  readonly #authenticate: Authenticate | undefined
  readonly #authorize: Authorize | undefined
  readonly #authorizeAction: AuthorizeAction | undefined
  readonly #allowedOrigins: ReadonlySet<string> | undefined
  readonly #rate: RateLimiter
  readonly #streamLimit: StreamLimiter
  /** Proposals being handled, so shutdown can wait for them: a count, not a set of promises, on the hot path. */
  #proposing = 0
  /** Called when the last proposal in flight has been answered, while shutdown waits. */
  #settled: (() => void) | undefined
  #drained: Promise<void> | undefined
  #shuttingDown = false
  readonly #trustProxy: boolean
  #lastPeer = ''
  #lastPeerKey = ''
  readonly #resumeWaitMs: number
  /** Names this sync server among the instances: the first part of its stream ids. */
  readonly #id = randomBase64url(12)
  readonly #control: StreamControl
  readonly #presence: PresenceRooms
  readonly #presenceRate: RateLimiter
  readonly #broadcastRate: RateLimiter
  /** Requests for streams on other instances, per principal (or address): stream ids are the client's to write, and each such request costs a message on the bus and a wait. */
  readonly #routedPresenceRate: RateLimiter

  constructor(universe: ServedUniverse, options: SyncServerOptions = {}) {
    this.#universe = universe
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes
    this.#maxDepth = options.maxDepth ?? DEFAULT_LIMITS.maxDepth
    this.#retryHint = encodeRetryHint(options.retryMs ?? 1000)
    this.#hub = new Hub(
      { heartbeatMs: options.heartbeatMs ?? 5000, maxQueuedBytes: options.maxQueuedBytes ?? 4 * 1024 * 1024 },
      HEARTBEAT_FRAME,
      RESYNC_FRAME,
    )
    const stopCommits = universe.onCommit((entry) => this.#hub.publish(entry))
    // A new epoch: every stream starts over from a snapshot of the new history.
    const stopResets = universe.onReset(() => this.#hub.closeAll(RESYNC_FRAME))
    const mayRead = (principal: unknown, storeKey: string) => this.#may(principal as Principal | undefined, storeKey, 'read')
    const publish = (signal: PresenceSignal) => universe.signal(signal).catch((error: unknown) => console.error('[zuno] could not tell the other instances of presence', error))
    this.#presence = new PresenceRooms({ serverId: this.#id, mayRead, publish }, options.presence)
    this.#hub.onRemoved = (stream) => this.#presence.ended(stream)
    this.#control = new StreamControl(this.#id, { hub: this.#hub, universe, presence: this.#presence, mayRead })
    this.#presence.start()
    this.#stopFollowing = () => {
      stopCommits()
      stopResets()
      this.#control.close()
      this.#presence.close()
    }
    this.#authenticate = options.authenticate
    // The app's store rules and this option must both allow; without rules, only the option asks.
    const { authorize } = options
    this.#authorize = universe.storeRules ? (check) => universe.allows(check.principal, check.storeKey, check.action) && (authorize?.(check) ?? true) : authorize
    this.#authorizeAction = options.authorizeAction
    this.#allowedOrigins = options.allowedOrigins && new Set(options.allowedOrigins)
    const rate = options.maxProposalsPerSecond ?? 50
    this.#rate = new RateLimiter(rate, rate * 2)
    const presenceRate = options.maxPresencePerSecond ?? 100
    this.#presenceRate = new RateLimiter(presenceRate, presenceRate * 2, 'presence requests a second per stream')
    this.#routedPresenceRate = new RateLimiter(presenceRate, presenceRate * 2, 'presence requests a second for streams on other instances')
    const broadcastRate = options.maxBroadcastsPerSecond ?? 100
    this.#broadcastRate = new RateLimiter(broadcastRate, Math.max(2 * broadcastRate, PRESENCE_LIMITS.maxOps), 'broadcast events a second per stream')
    this.#streamLimit = new StreamLimiter(options.maxStreams ?? 10_000, options.maxStreamsPerPrincipal ?? 16)
    this.#trustProxy = options.trustProxy === true
    this.#resumeWaitMs = options.resumeWaitMs ?? 3000
  }

  /** True once `shutdown()` has begun: every new request is answered 503 `shutting_down`. */
  get shuttingDown(): boolean {
    return this.#shuttingDown
  }

  /** Number of open SSE streams. */
  get streams(): number {
    return this.#hub.size
  }

  /**
   * Answers one request. Never rejects: every failure becomes a JSON error response. Not an async
   * function: a proposal without `authenticate` passes through one async layer only, `#sync`.
   */
  handle(request: ZunoRequest): Promise<ZunoResponse> {
    try {
      const allowed = ALLOWED_METHODS.get(request.path)
      if (allowed === undefined) throw new ZunoError('not_found', `No Zuno endpoint at ${JSON.stringify(request.path.slice(0, 200))}`)
      if (request.method !== allowed) return Promise.resolve(methodNotAllowed(allowed))
      if (this.#shuttingDown) throw shuttingDown()
      checkProtocol(request)
      this.#checkOrigin(request)
      // Without authentication there is nobody to wait for: no extra turn of the event loop.
      if (this.#authenticate === undefined) return this.#route(request, undefined)
      return this.#identify(request).then((principal) => this.#route(request, principal)).catch(errorResponse)
    } catch (error) {
      return Promise.resolve(errorResponse(error))
    }
  }

  /** Sends a request its endpoint's way, once its principal is known; never rejects. */
  #route(request: ZunoRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    // Shutdown may have begun while `authenticate` ran: it waits only for proposals it knows of.
    if (this.#shuttingDown) return Promise.resolve(errorResponse(shuttingDown()))
    if (request.path === PATHS.sse) return this.#sse(request, principal).catch(errorResponse)
    if (request.path === PATHS.state) return this.#state(request, principal).catch(errorResponse)
    if (request.path === PATHS.subscribe) return this.#subscribe(request, principal).catch(errorResponse)
    if (request.path === PATHS.presence) return this.#presenceRequest(request, principal).catch(errorResponse)
    return this.#sync(request, principal)
  }

  /** Ends every stream at once (clients reconnect) and stops following the universe. */
  close(): void {
    this.#stopFollowing()
    this.#hub.closeAll()
  }

  /**
   * Graceful shutdown: new requests get 503 `shutting_down`, proposals in flight finish (so every
   * acknowledged write is in the universe), then streams end with a retry hint, so clients
   * reconnect (to another instance, behind a load balancer). Then stop the HTTP server.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true
    if (this.#proposing > 0) await (this.#drained ??= new Promise<void>((resolve) => (this.#settled = resolve)))
    this.#stopFollowing()
    this.#hub.closeAll(this.#retryHint)
  }

  #checkOrigin(request: ZunoRequest): void {
    const origin = request.header('origin')
    if (this.#allowedOrigins !== undefined && origin && !this.#allowedOrigins.has(origin)) {
      throw new ZunoError('origin_not_allowed', `Origin ${JSON.stringify(origin.slice(0, 200))} may not call this server`)
    }
  }

  async #identify(request: ZunoRequest): Promise<Principal | undefined> {
    if (this.#authenticate === undefined) return undefined
    const view: AuthRequest = {
      header: (name) => request.header(name),
      query: request.query,
      cookie: (name) => readCookie(request.header('cookie'), name),
    }
    const principal = await this.#authenticate(view)
    if (principal === undefined) throw new ZunoError('unauthenticated', 'Sign in first')
    return principal
  }

  #may(principal: Principal | undefined, storeKey: string, action: 'read' | 'write'): boolean {
    return this.#authorize === undefined || this.#authorize({ principal, storeKey, action })
  }

  #mustRead(principal: Principal | undefined, storeKeys: readonly string[] | undefined): void {
    for (const storeKey of storeKeys ?? []) {
      if (!this.#may(principal, storeKey, 'read')) throw new ZunoError('forbidden', `You may not read ${JSON.stringify(storeKey)}`)
    }
  }

  /** The stores a principal may read, each asked once; `undefined` when everything is readable. */
  #readable(principal: Principal | undefined): ReadRights | undefined {
    if (this.#authorize === undefined) return undefined
    return new ReadRights((storeKey) => this.#may(principal, storeKey, 'read'))
  }

  /** Handles a proposal; never rejects. */
  async #sync(request: ZunoRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    this.#proposing += 1
    try {
      if (!isJsonContentType(request.header('content-type'))) {
        throw new ZunoError('unsupported_media_type', 'POST /sync takes Content-Type: application/json')
      }
      // One await at most: for the body, when no framework has read it already.
      const proposal = this.#parsedProposal(request) ?? parseProposalText(await request.readBody(this.#maxBodyBytes), this.#maxDepth)
      this.#rate.take(principal?.id ?? this.#peerKey(request) ?? `client:${proposal.clientId}`)
      if (isActionRequest(proposal)) return await this.#action(proposal, principal)
      // A principal who may write a store but not read it learns its version, never its state.
      const unreadable = this.#authorize !== undefined && !this.#may(principal, proposal.storeKey, 'read')
      // Whether a patch applies would tell such a principal what the state holds: it sends states whole.
      if (unreadable && isPatchRequest(proposal)) throw new ZunoError('patch_mismatch', 'You may not read this store: send the whole state')
      // Client ids are scoped to their principal: another user's ids reach a client of one's own.
      const proposer = principal === undefined ? ANONYMOUS : { principal: principal.id }
      const result = this.#may(principal, proposal.storeKey, 'write')
        ? await this.#universe.propose(proposal, proposer)
        : await this.#universe.refuse(proposal, proposer, new ZunoError('forbidden', `You may not write ${JSON.stringify(proposal.storeKey)}`))
      switch (result.type) {
        case 'accepted': {
          const { storeKey, version, state, patches } = result
          const body: SyncAccepted = result.duplicate ? { ok: true, storeKey, version, state, duplicate: true } : { ok: true, storeKey, version, state }
          if (result.opVersion !== undefined) body.opVersion = result.opVersion
          if (patches !== undefined) withPatches(body, patches)
          if (unreadable) withoutState(body)
          return json(200, body)
        }
        case 'conflict': {
          const body: SyncConflict = { ok: false, error: 'conflict', storeKey: result.storeKey, version: result.version, state: result.state }
          if (result.deleted) body.deleted = true
          if (result.deletedAt !== undefined) body.deletedAt = result.deletedAt
          if (result.patches !== undefined) withPatches(body, result.patches)
          if (unreadable) withoutState(body)
          return json(409, body)
        }
      }
      throw result.error
    } catch (error) {
      return errorResponse(error)
    } finally {
      this.#proposing -= 1
      if (this.#proposing === 0) this.#settled?.()
    }
  }

  /** Runs an action for `principal`, within what it may read and write, and answers with what it changed. */
  async #action(request: ActionRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    const caller: ActionCaller = {
      principal: principal?.id ?? '',
      context: { principal },
      may: (storeKey, access) => this.#may(principal, storeKey, access),
    }
    const allowed = this.#authorizeAction === undefined || this.#mayRun(this.#authorizeAction, principal, request)
    const result = allowed
      ? await this.#universe.proposeAction(request, caller)
      : await this.#universe.refuseAction(request, caller, new ZunoError('forbidden', `You may not run ${JSON.stringify(request.action)}`))
    if (result.type === 'refused') throw result.error
    const { changes, cursor, duplicate } = result
    if (this.#authorize !== undefined) {
      // A principal who may write a store but not read it learns its version, never its state.
      for (const change of changes) if (!this.#may(principal, change.storeKey, 'read')) delete (change as Partial<StoreChange>).state
    }
    const body: ActionAccepted = { ok: true, action: request.action, changes }
    if (cursor !== undefined) body.cursor = cursor
    if (duplicate) body.duplicate = true
    return json(200, body)
  }

  /** Asks `authorizeAction`; one that throws (on arguments it did not expect, say) refuses. */
  #mayRun(authorizeAction: AuthorizeAction, principal: Principal | undefined, request: ActionRequest): boolean {
    try {
      return authorizeAction({ principal, action: request.action, args: request.args }) === true
    } catch (error) {
      console.error(`[zuno] authorizeAction threw for ${JSON.stringify(request.action)}; refusing the action`, error)
      return false
    }
  }

  /** The proposal when the body is at hand (empty, or parsed by a framework); `undefined` when it must be read. */
  #parsedProposal(request: ZunoRequest): Proposal | undefined {
    const lengthHeader = request.header('content-length')
    const declared = Number(lengthHeader ?? 0)
    if (declared > this.#maxBodyBytes) throw tooLarge(this.#maxBodyBytes)
    // Some parsers turn an empty body into `{}`; empty is empty, whatever was made of it.
    const parsedBody = lengthHeader === '0' ? '' : request.parsedBody
    if (typeof parsedBody === 'string') return parseProposalText(parsedBody, this.#maxDepth)
    if (parsedBody === undefined) return undefined
    // A framework parsed it already: check depth first (iteratively), then, without a declared
    // length, measure what the body would have been.
    if (valueExceedsDepth(parsedBody, this.#maxDepth)) {
      throw new ZunoError('too_deep', `JSON nests deeper than ${this.#maxDepth} levels`)
    }
    if (!declared && utf8Length(JSON.stringify(parsedBody)) > this.#maxBodyBytes) throw tooLarge(this.#maxBodyBytes)
    const proposal = validateProposal(parsedBody, this.#maxDepth)
    // A framework's parser may have read 1e400 as Infinity, which JSON cannot carry on.
    checkJsonPayload(proposal, this.#maxDepth)
    return proposal
  }

  async #state(request: ZunoRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    const storeKeys = this.#storeFilter(request)
    this.#mustRead(principal, storeKeys)
    await this.#universe.ready
    const held = await this.#universe.hold(storeKeys)
    try {
      return { ...json(200, held.snapshot(storeKeys, this.#readable(principal)?.may)), headers: NOT_STORED }
    } finally {
      held.release()
    }
  }

  async #sse(request: ZunoRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    // A revalidation while this request waits (for the universe, or to catch up) is applied as it opens.
    const checkedAt = this.#control.revalidations
    // `stores` are the stream's own (one the principal may not read refuses it); `follow`, those its
    // client followed since, which may have been revoked meanwhile: left out and reported (`revoked`).
    const fixed = this.#storeFilter(request, 'stores')
    this.#mustRead(principal, fixed)
    const followed = this.#storeFilter(request, 'follow')
    let storeKeys = followed === undefined ? fixed : [...new Set([...(fixed ?? []), ...followed])]
    if (storeKeys !== undefined && storeKeys.length > MAX_STORES_PER_STREAM) throw tooManyStores()
    const versions = parseVersions(request.query.get('versions'), fixed, followed)
    const revoked = followed?.filter((storeKey) => !this.#may(principal, storeKey, 'read')) ?? []
    if (revoked.length > 0) {
      const gone = new Set(revoked)
      storeKeys = storeKeys?.filter((storeKey) => !gone.has(storeKey))
      for (const storeKey of revoked) versions?.delete(storeKey)
    }
    await this.#universe.ready
    // The header wins: EventSource sends it on every reconnect, with a newer id than the URL's.
    const lastEventId = request.header('last-event-id') || request.query.get('lastEventId') || undefined
    // Patches only to a client that says it reads them: one of before deltas would take a patch for no state.
    const patches = request.query.get('patches') === '1'
    const wantsHello = request.query.get('hello') === '1'
    const keySet = storeKeys === undefined ? undefined : new Set(storeKeys)
    const readable = storeKeys === undefined ? this.#readable(principal) : undefined
    if (this.#shuttingDown) throw shuttingDown()
    const release = this.#streamLimit.open(principal?.id ?? this.#peerKey(request))
    // Never answer a resume with a truth older than the client saw: wait (bounded) for this instance to catch up.
    const catchingUp = lastEventId === undefined ? undefined : this.#universe.catchUp(lastEventId, this.#resumeWaitMs)
    if (catchingUp !== undefined) {
      await catchingUp
      if (this.#shuttingDown) {
        release()
        throw shuttingDown()
      }
    }
    // What the opening shows, held in memory until then (a storage read lazily reads it now). A
    // stream of every store that can resume from the log needs no snapshot: nothing is read for it.
    const resumable = storeKeys === undefined && lastEventId !== undefined && this.#universe.since(lastEventId) !== undefined
    // The same for a snapshot of every store encoded already at this cursor (should the cursor move
    // before the opening, the snapshot is asked for then: read lazily, the client comes back).
    const cached = storeKeys === undefined && readable === undefined && this.#snapshotCache?.cursor === this.#universe.cursor
    let held: HeldStores
    try {
      // Should the log move on past it before the opening, the snapshot is asked for then (and refused if read lazily).
      held = resumable || cached ? { snapshot: (keys, readable) => this.#universe.snapshot(keys, readable), release() {} } : await this.#universe.hold(storeKeys)
    } catch (error) {
      release()
      throw error
    }
    const owner = { streamId: `${this.#id}.${randomBase64url(16)}`, principalId: principal?.id ?? '', principal }
    return {
      kind: 'sse',
      cancel: () => {
        held.release()
        release()
      },
      open: (sink) => {
        if (this.#shuttingDown) {
          // Shutdown began between the answer and its opening: end at once, with the retry hint.
          held.release()
          release()
          sink.write(this.#retryHint)
          sink.close()
          return { drained() {}, close() {} }
        }
        let [streamKeys, streamSet, gone] = [storeKeys, keySet, revoked]
        if (storeKeys !== undefined && this.#control.revalidations !== checkedAt) {
          // Rights changed while the request waited: what they no longer allow goes as revoked, as a follow would.
          const late = new Set(storeKeys.filter((storeKey) => !this.#may(principal, storeKey, 'read')))
          if (late.size > 0) {
            streamKeys = storeKeys.filter((storeKey) => !late.has(storeKey))
            streamSet = new Set(streamKeys)
            for (const storeKey of late) versions?.delete(storeKey)
            gone = [...revoked, ...late]
          }
        }
        // `hello` goes to a client that follows at runtime (it names what it holds) or asks for it
        // (`?hello=1`, for presence): others never use its id.
        const opening = versions === undefined && !wantsHello ? [this.#retryHint] : [this.#retryHint, encodeHelloFrame(owner.streamId)]
        if (gone.length > 0) opening.push(encodeRevokedFrame(gone))
        try {
          opening.push(...this.#openingFrames(lastEventId, streamKeys, streamSet ?? readable, patches, versions, held))
        } catch (error) {
          // The stores read could not be brought on to now (rare: the log moved on past them): the client comes back.
          held.release()
          release()
          console.error('[zuno] a stream could not open', error)
          sink.write(this.#retryHint)
          sink.close()
          return { drained() {}, close() {} }
        }
        held.release()
        const subscription = this.#hub.add(sink, streamSet, readable, opening, patches, owner)
        return {
          drained: () => subscription.drained(),
          close: () => {
            release()
            subscription.close()
          },
        }
      },
    }
  }

  /**
   * A replay of what the client missed when the log still has it, else a snapshot. With the
   * versions the client holds, a store the replay would not bring to its current version (its
   * state never arrived, or arrived older than the replay starts) comes whole, in a `followed`
   * event after the replay, instead of events the client could not apply.
   */
  #openingFrames(
    lastEventId: string | undefined,
    storeKeys: readonly string[] | undefined,
    wanted: ReadonlySet<string> | ReadRights | undefined,
    patches: boolean,
    versions: ReadonlyMap<string, number | undefined> | undefined,
    held: HeldStores,
  ): Uint8Array[] {
    const missed = lastEventId === undefined ? undefined : this.#universe.since(lastEventId)
    if (missed === undefined) return [this.#snapshotFrame(storeKeys, wanted instanceof ReadRights ? wanted.may : undefined, held)]
    const stale = versions === undefined ? undefined : this.#staleStores(missed, versions, held)
    const follows = wanted === undefined ? undefined : wanted instanceof ReadRights ? wanted.may : (key: string) => wanted.has(key)
    const keep = stale === undefined || stale.size === 0 ? follows : (key: string) => !stale.has(key) && (follows === undefined || follows(key))
    const frames: Uint8Array[] = []
    for (const entry of missed) {
      const frame = patches ? entry.frame : entry.wholeFrame
      if (keep === undefined) frames.push(frame)
      else if (entry.event.changes !== undefined) {
        // A commit of several stores: the part this stream sees, if any.
        const part = encodeCommitFrame(entry.event, keep, patches)
        if (part !== undefined) frames.push(part)
      } else if (keep(entry.event.storeKey)) frames.push(frame)
    }
    if (stale !== undefined && stale.size > 0) {
      const { cursor, stores } = held.snapshot([...stale])
      frames.push(encodeFollowedFrame(cursor, { stores }))
    }
    frames.push(RESUMED_FRAME)
    return frames
  }

  /** The stores that the replay `missed` would not bring from the versions the client holds to their current ones. */
  #staleStores(missed: readonly LogEntry[], versions: ReadonlyMap<string, number | undefined>, held: HeldStores): Set<string> {
    const stale = new Set<string>()
    const reached = new Map<string, number>()
    for (const [storeKey, version] of versions) {
      if (version === undefined) stale.add(storeKey)
      else reached.set(storeKey, version)
    }
    for (const entry of missed) {
      for (const { storeKey, version } of entry.event.changes ?? [entry.event]) {
        const held = reached.get(storeKey)
        // Older than what the client holds: one of its own writes, answered before the stream brought it.
        if (held === undefined || version <= held) continue
        if (version === held + 1) reached.set(storeKey, version)
        else {
          stale.add(storeKey)
          reached.delete(storeKey)
        }
      }
    }
    if (reached.size > 0) {
      const { stores } = held.snapshot([...reached.keys()])
      for (const [storeKey, version] of reached) if (version < (stores[storeKey]?.version ?? 0)) stale.add(storeKey)
    }
    return stale
  }

  /** `POST /subscribe`: the stores an open stream starts and stops following. */
  async #subscribe(request: ZunoRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    if (!isJsonContentType(request.header('content-type'))) {
      throw new ZunoError('unsupported_media_type', 'POST /subscribe takes Content-Type: application/json')
    }
    const body = await this.#jsonBody(request)
    this.#rate.take(principal?.id ?? this.#peerKey(request) ?? 'anonymous')
    const subscribe = validateSubscribeRequest(body)
    this.#mustRead(principal, subscribe.follow)
    await this.#universe.ready
    await this.#control.subscribe(subscribe, principal?.id ?? '')
    const answer: SubscribeAccepted = { ok: true }
    return json(200, answer)
  }

  /** `POST /presence`: the stream's tabs join, change and leave rooms, and broadcast to them; with no op, a heartbeat. */
  async #presenceRequest(request: ZunoRequest, principal: Principal | undefined): Promise<ZunoResponse> {
    if (!isJsonContentType(request.header('content-type'))) {
      throw new ZunoError('unsupported_media_type', 'POST /presence takes Content-Type: application/json')
    }
    const presence = validatePresenceRequest(await this.#jsonBody(request))
    this.#presenceRate.take(presence.streamId)
    if (!this.#control.holds(presence.streamId)) this.#routedPresenceRate.take(principal?.id ?? this.#peerKey(request) ?? 'anonymous')
    const broadcasts = presence.ops.reduce((count, op) => (op.broadcast === undefined ? count : count + 1), 0)
    if (broadcasts > 0) this.#broadcastRate.take(presence.streamId, broadcasts)
    // The rules are asked by the stream's instance, with the principal the stream holds, room by room.
    const outcome = await this.#control.presence(presence, principal?.id ?? '')
    const answer: PresenceAccepted = { ok: true, ...outcome }
    return json(200, answer)
  }

  /** A small JSON body (the control path's), parsed by a framework or here, within the body and depth limits. */
  async #jsonBody(request: ZunoRequest): Promise<unknown> {
    const declared = Number(request.header('content-length') ?? 0)
    if (declared > this.#maxBodyBytes) throw tooLarge(this.#maxBodyBytes)
    const parsed = request.header('content-length') === '0' ? '' : request.parsedBody
    if (parsed !== undefined && typeof parsed !== 'string') {
      if (valueExceedsDepth(parsed, this.#maxDepth)) throw new ZunoError('too_deep', `JSON nests deeper than ${this.#maxDepth} levels`)
      return parsed
    }
    const body = parsed ?? (await request.readBody(this.#maxBodyBytes))
    if (textExceedsDepth(body, this.#maxDepth)) throw new ZunoError('too_deep', `JSON nests deeper than ${this.#maxDepth} levels`)
    try {
      return JSON.parse(body)
    } catch {
      throw new ZunoError('bad_json', 'The body is not valid JSON')
    }
  }

  #snapshotFrame(storeKeys: readonly string[] | undefined, readable: ((storeKey: string) => boolean) | undefined, held: HeldStores): Uint8Array {
    const shared = storeKeys === undefined && readable === undefined
    // The full snapshot only changes with a commit, so it is built and encoded once per cursor.
    if (shared && this.#snapshotCache?.cursor === this.#universe.cursor) return this.#snapshotCache.frame
    const { stores, cursor } = held.snapshot(storeKeys, readable)
    const frame = encodeSnapshotFrame(cursor, { stores })
    if (shared) this.#snapshotCache = { cursor, frame }
    return frame
  }

  /**
   * Whose budget an anonymous request spends: its peer address, not the client id, which the
   * client chooses. `undefined` where the adapter knows no address.
   */
  #peerKey(request: ZunoRequest): string | undefined {
    const peer = (this.#trustProxy && firstForwardedHop(request.header('x-forwarded-for'))) || request.peer
    if (!peer) return undefined
    // A connection sends many requests, all from one address: its key is made (and hashed) once.
    if (peer !== this.#lastPeer) {
      this.#lastPeer = peer
      this.#lastPeerKey = `peer:${peer}`
    }
    return this.#lastPeerKey
  }

  /** A list of store keys in the query (`stores`, `follow`), checked; `undefined` when absent. */
  #storeFilter(request: ZunoRequest, name = 'stores'): string[] | undefined {
    const storeKeys = parseStoreList(request.query.get(name))
    if (storeKeys === undefined) return undefined
    if (storeKeys.length > MAX_STORES_PER_STREAM) throw tooManyStores()
    for (const key of storeKeys) {
      if (!STORE_KEY_PATTERN.test(key)) {
        throw new ZunoError('invalid_store_key', `Invalid store key ${JSON.stringify(key.slice(0, 200))}`)
      }
    }
    return storeKeys
  }
}


/**
 * `?versions=` of a stream: per store of `?stores=` then of `?follow=`, in the same order, the
 * version the client holds, or `-` for none. `undefined` when the client sent none.
 */
function parseVersions(value: string | null, fixed: readonly string[] | undefined, followed: readonly string[] | undefined): Map<string, number | undefined> | undefined {
  if (value === null) return undefined
  const parts = value === '' ? [] : value.split(',')
  const storeKeys = [...(fixed ?? []), ...(followed ?? [])]
  if ((fixed === undefined && followed === undefined) || parts.length !== storeKeys.length) {
    throw new ZunoError('invalid_versions', '`versions` gives one version (or `-`) per store of `stores` and `follow`, in that order')
  }
  const versions = new Map<string, number | undefined>()
  parts.forEach((part, i) => {
    const version = part === '-' ? undefined : Number(part)
    if (version !== undefined && !(Number.isSafeInteger(version) && version >= 0 && /^\d+$/.test(part))) {
      throw new ZunoError('invalid_versions', `Invalid version ${JSON.stringify(part.slice(0, 20))} in \`versions\``)
    }
    versions.set(storeKeys[i] as string, version)
  })
  return versions
}

/** The proposer of every anonymous proposal: one object, not one per request. */
const ANONYMOUS: Readonly<Proposer> = { principal: '' }

/** A request that names another protocol version than this server's is refused before anything else. */
function checkProtocol(request: ZunoRequest): void {
  const named = request.header(PROTOCOL_HEADER) ?? request.query.get('v')
  if (named && named !== PROTOCOL_VERSION_TEXT) {
    throw new ZunoError('unsupported_protocol', `This server speaks Zuno protocol ${PROTOCOL_VERSION}, not ${JSON.stringify(named.slice(0, 20))}`)
  }
}

const PROTOCOL_VERSION_TEXT = String(PROTOCOL_VERSION)

function json(status: number, body: unknown): ZunoResponse & { kind: 'json' } {
  return { kind: 'json', status, body: JSON.stringify(body) }
}

function methodNotAllowed(allow: string): ZunoResponse {
  const error = new ZunoError('method_not_allowed', `Use ${allow}`)
  return { ...json(error.status, error.toBody()), headers: { allow } }
}

function tooManyStores(): ZunoError {
  return new ZunoError('too_many_stores', `A stream follows at most ${MAX_STORES_PER_STREAM} stores`)
}

function shuttingDown(): ZunoError {
  return new ZunoError('shutting_down', 'The server is shutting down; try another', { retryAfter: 1 })
}

/** The client's address as the first proxy saw it: the leftmost `X-Forwarded-For` entry. */
function firstForwardedHop(header: string | null | undefined): string | undefined {
  if (!header) return undefined
  const comma = header.indexOf(',')
  return (comma < 0 ? header : header.slice(0, comma)).trim() || undefined
}

/** The `payload_too_large` error; adapters throw it from `readBody`. */
export function tooLarge(limit: number): ZunoError {
  return new ZunoError('payload_too_large', `The body is larger than ${limit} bytes`)
}

/** Turns anything thrown into a JSON error; unexpected failures become 503 and are reported. */
export function errorResponse(error: unknown): ZunoResponse {
  if (isZunoError(error) && error.status >= 400) {
    const response = json(error.status, error.toBody())
    if (error.retryAfter !== undefined) response.headers = { 'retry-after': String(error.retryAfter) }
    return response
  }
  // Not a client's fault, and not a crash: say "try again" and let the host see what happened.
  console.error('[zuno] unexpected error while handling a request', error)
  return json(503, { ok: false, error: 'unavailable', message: 'The server could not handle the request; try again' })
}

/** An answer that says the state by the patches since the proposal's base, which are shorter. */
function withPatches(body: SyncAccepted | SyncConflict, patches: Patch[]): void {
  delete (body as { state?: unknown }).state
  body.patches = patches
}

/** An answer to a principal who may write the store but not read it: its version, never its state. */
function withoutState(body: SyncAccepted | SyncConflict): void {
  delete (body as { state?: unknown }).state
  delete body.patches
}
