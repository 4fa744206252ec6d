/**
 * Wire protocol v2: every constant and message shape that the client and the server share.
 * `docs/protocol.md` describes the same protocol in prose (and `docs/design/protocol-v2.md` why);
 * keep them in step.
 */

import type { Patch } from './patch'

/** Version of the wire protocol described in `docs/protocol.md`. */
export const PROTOCOL_VERSION = 2

/** The header (and, on `GET /sse`, the `v` query parameter) that names the protocol version. */
export const PROTOCOL_HEADER = 'zuno-protocol'

/** Where adapters mount the endpoints unless told otherwise. */
export const DEFAULT_PREFIX = '/zuno'

/** Endpoint paths, relative to the prefix. */
export const PATHS = {
  /** `POST`: propose the next state of one store, or an action. */
  sync: '/sync',
  /** `GET`: the event stream (a snapshot, then every accepted change). */
  sse: '/sse',
  /** `GET`: a one-off snapshot with its cursor, for server rendering and polling. */
  state: '/state',
  /** `POST`: start or stop following stores on an open stream ({@link SubscribeRequest}). */
  subscribe: '/subscribe',
  /** `POST`: the presence of a stream's tabs in rooms, and events broadcast to rooms ({@link PresenceRequest}). */
  presence: '/presence',
} as const

/** SSE event names. */
export const SSE_EVENTS = {
  /** Every followed store at once: the first event of a fresh stream, and after a resync. */
  snapshot: 'snapshot',
  /** One accepted change of one store ({@link StateEvent}). */
  state: 'state',
  /** One accepted change of several stores at once, an action's ({@link CommitEvent}): applied as one change. */
  commit: 'commit',
  /** The replay of a resumed stream is complete: the client is current again. */
  resumed: 'resumed',
  /** The server is dropping this stream (it fell too far behind): reconnect for a snapshot. */
  resync: 'resync',
  /** The first event of every stream: its id, which `POST /subscribe` names ({@link HelloMessage}). */
  hello: 'hello',
  /** Stores the stream now follows, as of the event id it carries ({@link SnapshotMessage}): the others are untouched. */
  followed: 'followed',
  /** Stores the stream no longer carries because the principal may no longer read them ({@link RevokedMessage}). */
  revoked: 'revoked',
  /** Who is in a room and what they broadcast: a whole room, or what changed in it ({@link PresenceMessage}). */
  presence: 'presence',
} as const

/** Most stores one stream follows: `?stores=` and `POST /subscribe` together. */
export const MAX_STORES_PER_STREAM = 1000

/** A stream id, as `hello` gives it: the instance's id and the stream's, joined by a dot. */
export const STREAM_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{1,32}$/

/** A store key: a letter or digit, then up to 127 of letters, digits and `._:-`. */
export const STORE_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/**
 * A client id: 16 and 22 random base64url characters, joined by a dot (228 random bits). It never
 * leaves the client's proposals; events name their writer by its `writerTag` (from `zuno/server`).
 */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}$/

/** An action's name: a letter, digit or `_`, then up to 127 of letters, digits and `_.:-`. */
export const ACTION_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/

/** An epoch: letters and digits, as event ids carry it. */
export const EPOCH_PATTERN = /^[A-Za-z0-9]{1,48}$/

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
/** The bytes of a client id that its writer tag is the digest of (ids are ASCII). */
export function clientIdBytes(clientId: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(clientId.length)
  for (let i = 0; i < clientId.length; i++) bytes[i] = clientId.charCodeAt(i) & 0xff
  return bytes
}

/** The writer tag spelled from the SHA-256 digest of a client id: its first 96 bits, in base64url. */
export function writerTagOfDigest(digest: Uint8Array): string {
  let tag = ''
  for (let i = 0; i < 12; i += 3) {
    const n = ((digest[i] as number) << 16) | ((digest[i + 1] as number) << 8) | (digest[i + 2] as number)
    tag += `${BASE64URL[n >>> 18]}${BASE64URL[(n >>> 12) & 63]}${BASE64URL[(n >>> 6) & 63]}${BASE64URL[n & 63]}`
  }
  return tag
}

/** Defaults the server applies unless configured otherwise. */
export const DEFAULT_LIMITS = {
  /** Largest accepted `POST /sync` body, in bytes. */
  maxBodyBytes: 1024 * 1024,
  /** Deepest accepted nesting of arrays and objects in a body. */
  maxDepth: 64,
} as const

/** Error codes and the HTTP status each one is answered with. */
export const ERROR_STATUS = {
  /** The body is not JSON. */
  bad_json: 400,
  /** The body is JSON but not a proposal. */
  invalid_body: 400,
  /** The store key does not match {@link STORE_KEY_PATTERN}. */
  invalid_store_key: 400,
  /** A stream would follow more than {@link MAX_STORES_PER_STREAM} stores. */
  too_many_stores: 400,
  /** `?versions=` of a stream does not give one version (or `-`) per store of `?stores=`. */
  invalid_versions: 400,
  /** `baseVersion` is not a non-negative integer. */
  invalid_base_version: 400,
  /** The proposal has no `state`. */
  missing_state: 400,
  /** `patch` is not a patch (see `docs/protocol.md#patches`). */
  invalid_patch: 400,
  /** `action` is not an action name ({@link ACTION_NAME_PATTERN}). */
  invalid_action: 400,
  /** The server defines no action of that name. */
  unknown_action: 400,
  /** `clientId` does not match {@link CLIENT_ID_PATTERN}. */
  invalid_client_id: 400,
  /** `opId` is not a positive integer. */
  invalid_op_id: 400,
  /** `epoch` is not an epoch. */
  invalid_epoch: 400,
  /** The request names a protocol version this server does not speak. */
  unsupported_protocol: 400,
  /** The body nests deeper than the server's `maxDepth`. */
  too_deep: 400,
  /** `authenticate` returned nobody. */
  unauthenticated: 401,
  /** `authorize` refused the store to this principal. */
  forbidden: 403,
  /** The `Origin` is not in `allowedOrigins`. */
  origin_not_allowed: 403,
  /** One more store would pass the universe's `maxStores`. */
  store_limit: 403,
  /** The store does not exist and `allowStore` refuses to create it. */
  store_not_allowed: 403,
  /** No endpoint at this path. */
  not_found: 404,
  /** `POST /subscribe` names a stream that is not open (it ended, or belongs to another principal). */
  unknown_stream: 404,
  /** The endpoint exists, but not for this method. */
  method_not_allowed: 405,
  /** The proposal was made on an old version: the answer carries the current state to rebase on. */
  conflict: 409,
  /** The op's epoch is not the server's: wait for the new epoch's snapshot, then re-propose. */
  epoch_changed: 409,
  /** The patch does not apply to the store's state at its base version: send the op again with a whole `state`. */
  patch_mismatch: 409,
  /** The server keeps no record of this client (forgotten, or a new storage): take a fresh identity. */
  unknown_client: 409,
  /** This opId was processed with another store or payload: a client bug, never answered with another op's answer. */
  op_id_reused: 409,
  /** The body is larger than `maxBodyBytes`. */
  payload_too_large: 413,
  /** The state is larger than the universe's `maxStateBytes`. */
  state_too_large: 413,
  /** A presence value or broadcast event is larger than {@link PRESENCE_LIMITS}. */
  presence_too_large: 413,
  /** The room has as many peers as the server's `maxPeersPerRoom`, or the tab or stream is in as many rooms or tabs as it may be. */
  room_full: 409,
  /** `POST /sync` was not sent as JSON. */
  unsupported_media_type: 415,
  /** The store's schema refused the state; the body lists the issues. */
  invalid_state: 422,
  /** The action's schema refused its arguments; the body lists the issues. */
  invalid_args: 422,
  /** The action refused its intent (`refuseAction` in its `run`); the message says why. */
  action_refused: 422,
  /** The action threw on the server; the server logs why. */
  action_failed: 422,
  /** Past `maxProposalsPerSecond`; retry after the `Retry-After` delay. */
  rate_limited: 429,
  /** The storage is failing, or the universe is not ready yet (await `universe.ready`). */
  unavailable: 503,
  /** Past `maxStreams` or `maxStreamsPerPrincipal`. */
  too_many_streams: 503,
  /** The server is shutting down; another instance (or this one, restarted) will answer. */
  shutting_down: 503,
  // Client-side only: never sent by a server.
  /** Client-side: the request did not reach the server, or its answer did not come back. */
  network: 0,
  /** Client-side: the server answered something that is not Zuno's protocol. */
  protocol: 0,
  /** Client-side: the replica was closed before the op was delivered. */
  closed: 0,
  /** Client-side: `maxPendingOps` ops already wait for the server. */
  queue_full: 0,
  /** Client-side: the updater passed to `set` threw. */
  update_failed: 0,
  /** Client-side: a snapshot universe (server rendering) does not take writes. */
  read_only: 0,
  /** A store was given another initial state than the one declared for it. */
  initial_mismatch: 0,
  /** The op was sent, never answered, and then the server forgot its client or something refused its retry: it may or may not have been applied. */
  outcome_unknown: 0,
  /** Something in front of the server answered `POST /sync` with a redirect, which Zuno never sends. */
  redirected: 0,
  /** The op was made on a version from before the store was deleted: it is refused rather than bringing the store back. */
  store_deleted: 0,
} as const

/**
 * An answer that is not Zuno's (a proxy's HTML 413, a bare 404): the client names it by its HTTP
 * status, since it carries no Zuno code.
 */
export type HttpErrorCode = `http_${number}`

/** A machine-readable error code. */
export type ErrorCode = keyof typeof ERROR_STATUS | HttpErrorCode

/** The HTTP status an error code stands for (0 for client-side codes). */
export function statusOfCode(code: ErrorCode): number {
  if (Object.hasOwn(ERROR_STATUS, code)) return ERROR_STATUS[code as keyof typeof ERROR_STATUS]
  return Number(code.slice('http_'.length)) || 0
}

/**
 * Refusals for good that the server records against the op, like an acceptance: the op's id is
 * used up, and the client's next op takes the next one. Any other refusal leaves the id free.
 */
export const RECORDED_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'forbidden',
  'store_not_allowed',
  'store_limit',
  'state_too_large',
  'invalid_state',
  'invalid_args',
  'action_refused',
  'action_failed',
  'unknown_action',
])

/** Body of `POST /sync`: propose `state` as the next version of `storeKey`. */
export interface SyncRequest<T = unknown> {
  /** The store to change. */
  storeKey: string
  /** The version the proposal was made on; accepted only if it is still the current one. */
  baseVersion: number
  /** The epoch of that version (from the event ids the client has seen). */
  epoch: string
  /** The whole new state (or see {@link PatchRequest}). */
  state: T
  /** Identifies the proposing client (see {@link CLIENT_ID_PATTERN}); with `opId` it makes retries idempotent. */
  clientId: string
  /** Per-client operation number: 1, 2, 3, … in the order the client issued its ops. */
  opId: number
}

/**
 * Body of `POST /sync` that proposes the next state of `storeKey` as a patch of the state at
 * `baseVersion`: the same fields as {@link SyncRequest}, with `patch` instead of `state`.
 */
export interface PatchRequest {
  /** The store to change. */
  storeKey: string
  /** The version the patch was made on. */
  baseVersion: number
  /** The epoch of that version. */
  epoch: string
  /** What changes from the state at `baseVersion` (see `docs/protocol.md#patches`). */
  patch: Patch
  /** Identifies the proposing client, as in {@link SyncRequest}. */
  clientId: string
  /** The op's number in its client's sequence. */
  opId: number
}

/** Body of `POST /sync` for an action: run `action` with `args` on the server's current state. */
export interface ActionRequest<TArgs = unknown> {
  /** The action's name, as the app defines it. */
  action: string
  /** Its arguments (absent for an action that takes none). */
  args?: TArgs
  /** The epoch of the client's history (from the event ids it has seen). */
  epoch: string
  /** Identifies the proposing client, as in {@link SyncRequest}. */
  clientId: string
  /** The op's number in its client's sequence, shared with state proposals. */
  opId: number
  /**
   * Set on a retry of an action in doubt (sent before, never answered): how long ago, in ms, it was
   * first sent. A server that keeps no record of the client then runs it only if a record of an
   * earlier attempt could not have expired since (under half the client lifetime); otherwise it
   * answers `unknown_client`, and the client reports `outcome_unknown` rather than risk running it twice.
   */
  resentAfterMs?: number
}

/** One store an action changed, as its answer and its `commit` event carry it. */
export interface StoreChange<T = unknown> {
  /** The store. */
  storeKey: string
  /** Its new version. */
  version: number
  /** Its new state; absent in an answer to a principal who may write the store but not read it, and in an event that carries `patch`. */
  state: T
  /** In an event, instead of `state` when it is shorter: what changed since the store's previous version. */
  patch?: Patch
  /** The change deleted the store (no `state` then). */
  deleted?: true
}

/** 200 answer to an action. */
export interface ActionAccepted {
  /** Tells the answer from a refusal. */
  ok: true
  /** The action run. */
  action: string
  /** Every store it changed, with its new version and state (none when it wrote nothing). */
  changes: StoreChange[]
  /** The event id of its commit, or, when it wrote nothing, of the last event before it was decided. */
  cursor?: string
  /**
   * The op was processed before and what it made is no longer at hand: `changes` is empty. The
   * stores it wrote show its effect on the stream already, or a later one.
   */
  duplicate?: true
}

/** 200 answer to `POST /sync`. */
export interface SyncAccepted<T = unknown> {
  /** Tells the answer from a refusal. */
  ok: true
  /** The store that changed. */
  storeKey: string
  /** The version the op made (but see `duplicate`). */
  version: number
  /** The state as accepted: a schema may have transformed what was sent. Absent when `patches` says it. */
  state: T
  /**
   * Instead of `state`, in the answer to a patch proposal when they are shorter: the patches from the
   * proposal's `baseVersion` to `version`, one per version (more than one when the server merged
   * the proposal over changes made since its base).
   */
  patches?: Patch[]
  /**
   * The op was processed before and what it made is no longer at hand: `version` and `state` are
   * the store's current ones, not necessarily what the op made.
   */
  duplicate?: true
  /** With `duplicate`, when known: the version the op made. */
  opVersion?: number
}

/** 409 answer to `POST /sync`: the proposal was stale; here is the current state. */
export interface SyncConflict<T = unknown> {
  /** Tells the answer from an acceptance. */
  ok: false
  /** Always `conflict`. */
  error: 'conflict'
  /** The store proposed on. */
  storeKey: string
  /** The store's current version: the base for the next attempt. */
  version: number
  /** The store's current state, to rebase the op on; absent when `patches` says it. */
  state: T
  /** Instead of `state` when they are shorter: the patches from the proposal's `baseVersion` to `version`, one per version. */
  patches?: Patch[]
  /** The store was deleted at `version` (no `state`): an op made before it learned so is refused, not applied to nothing. */
  deleted?: true
  /** The store was deleted at this version, after the proposal's base, and created again since: an op made before the deletion is refused. */
  deletedAt?: number
}

/** Every other non-2xx answer. */
export interface ErrorBody {
  /** Tells the answer from an acceptance. */
  ok: false
  /** What went wrong, for code to branch on. */
  error: ErrorCode
  /** What went wrong, for people; not stable across versions. */
  message: string
  /** With `invalid_state`: what the store's schema found wrong. */
  issues?: readonly SchemaIssue[]
}

/** One problem a schema found, as Standard Schema reports it. */
export interface SchemaIssue {
  /** The schema's own words. */
  message: string
  /** Where in the state, as keys and indexes from its root; absent when the issue is the whole state. */
  path?: ReadonlyArray<string | number>
}

/** One store as it stands at some cursor. */
export interface StoreState<T = unknown> {
  /** How many changes the server has accepted to this store (0: its initial state). */
  version: number
  /** The state at that version (absent for a deleted store). */
  state: T
  /** The store was deleted at this version: it shows its initial state, and a write creates it again. */
  deleted?: true
  /** In a snapshot, for a store deleted and created again since: the deletion's version (ops made before it are refused). */
  deletedAt?: number
}

/** Data of the `snapshot` SSE event, and body of `GET /state` (which adds `cursor`). */
export interface SnapshotMessage {
  /** Every store the stream follows, by key. */
  stores: Record<string, StoreState>
}

/** Data of the `hello` SSE event, the first of every stream. */
export interface HelloMessage {
  /** Names this stream in `POST /subscribe`; valid while it stays open. */
  streamId: string
}

/** Data of the `revoked` SSE event. */
export interface RevokedMessage {
  /** The stores the stream stopped carrying. */
  stores: string[]
}

/**
 * Body of `POST /subscribe`: the stores an open stream starts and stops following. A store newly
 * followed arrives on the stream as a `followed` event, before the answer.
 */
export interface SubscribeRequest {
  /** The stream, as its `hello` event named it. */
  streamId: string
  /** Stores to start following. */
  follow?: string[]
  /** Stores to stop following. */
  unfollow?: string[]
}

/** Body of a 200 answer to `POST /subscribe`. */
export interface SubscribeAccepted {
  /** Always true. */
  ok: true
}

/**
 * A tab's key: 22 base64url characters (128 random bits) the tab makes and keeps to itself. The
 * server shows others a digest of it with the principal ({@link PresencePeer.id}), so only the
 * tab, and only as its principal, can speak as that peer.
 */
export const TAB_KEY_PATTERN = /^[A-Za-z0-9_-]{22}$/

/** Bounds of presence, the same on every server: what one request, tab and room may hold. */
export const PRESENCE_LIMITS = {
  /** Largest presence value of one peer, as JSON bytes. */
  maxStateBytes: 2048,
  /** Largest broadcast event, as JSON bytes. */
  maxBroadcastBytes: 2048,
  /** Most ops in one `POST /presence`. */
  maxOps: 256,
  /** Most tabs one stream carries. */
  maxTabsPerStream: 64,
  /** Most rooms one tab is in. */
  maxRoomsPerTab: 32,
} as const

/** One thing a tab does in a room, in `POST /presence`. */
export interface PresenceOp {
  /** The tab's key ({@link TAB_KEY_PATTERN}). */
  tab: string
  /** The room: a store key, which the principal must be allowed to read. */
  room: string
  /** Joins the room, or replaces the tab's presence value there (any JSON, `null` for none). */
  state?: unknown
  /** Leaves the room. */
  leave?: true
  /** Sends an event to everyone in the room (the tab must be in it): never kept, never replayed. */
  broadcast?: unknown
  /**
   * With `broadcast`: the event's number, increasing with each event of the tab. An event sent
   * again (its request's answer was lost) with a number the tab's peer has had goes out no more.
   */
  seq?: number
}

/** Body of `POST /presence`. With no op it only says the stream's tabs are still there. */
export interface PresenceRequest {
  /** The stream, as its `hello` event named it: it carries the rooms' presence to these tabs. */
  streamId: string
  /** Applied in order. */
  ops: PresenceOp[]
}

/** Why a room's ops in a `POST /presence` were skipped. */
export interface PresenceRefusal {
  /**
   * `forbidden`, `room_full`, or `invalid_body` for a broadcast to a room the tab is not in. A
   * replica also shows, this way, a request the server refused whole for good (`too_deep`,
   * `payload_too_large`: a server with smaller limits than the replica checks for).
   */
  error: ErrorCode
  /** The reason in words (the first one's, when several tabs were refused). */
  message: string
  /** The tabs whose ops in the room were skipped: another tab's in the same room may have been applied. */
  tabs: string[]
}

/** Body of a 200 answer to `POST /presence`. */
export interface PresenceAccepted {
  /** Always true. */
  ok: true
  /** Per tab named in the request, its peer id: how the others, and the rooms' events, name it. */
  peers: Record<string, string>
  /** Rooms whose ops were skipped (the others were applied), with the first reason for each. */
  refused?: Record<string, PresenceRefusal>
  /** While any of its tabs is in a room, the stream sends a request (with no op, if none) at least this often, ms. */
  heartbeatMs: number
}

/** A peer in a room, as `presence` events show it. */
export interface PresencePeer {
  /** Stable for a tab and its principal, across reconnects and leader tabs. */
  id: string
  /** The id of the principal the server authenticated (`''` when anonymous). */
  principal: string
  /** Its presence value. */
  state: unknown
}

/** An event broadcast to a room. */
export interface PresenceBroadcast {
  /** The sender's peer id. */
  from: string
  /** The id of the principal who sent it. */
  principal: string
  /** What was sent. */
  data: unknown
}

/**
 * Data of the `presence` SSE event. With `whole`, `peers` is everyone in the room (replace what
 * you had); else `peers` are those who joined or changed, `left` those who left. Peers include the
 * stream's own tabs: a tab knows its id from {@link PresenceAccepted}.
 */
export interface PresenceMessage {
  /** The room. */
  room: string
  /** `peers` is the whole room. */
  whole?: true
  /** Who joined or changed (everyone, with `whole`), latest value each. */
  peers?: PresencePeer[]
  /** Who left. */
  left?: string[]
  /** Events broadcast to the room, in order. */
  broadcasts?: PresenceBroadcast[]
}

/** Body of `GET /state`. Pass `cursor` as `lastEventId` to `/sse` to continue without a gap. */
export interface StateResponse extends SnapshotMessage {
  /** The id of the last event the snapshot includes. */
  cursor: string
}

/** Data of the `state` SSE event: one accepted change. */
export interface StateEvent<T = unknown> {
  /** The store that changed. */
  storeKey: string
  /** Its new version. */
  version: number
  /** Its new state, whole; absent when `patch` is there. */
  state: T
  /** Instead of `state` when it is shorter: the patch from `version - 1`, which a replica holding that version applies (any other starts over from a snapshot). */
  patch?: Patch
  /** The change deleted the store: no `state`; replicas show its initial state. */
  deleted?: true
  /** The writer's public tag (`writerTag` of its client id): a writer recognises its own ops by it. */
  writer: string
  /** The writer's op number, so the writer can settle the op the event answers. */
  opId: number
}

/** Data of the `commit` SSE event: one accepted change of several stores, applied as one. */
export interface CommitEvent {
  /** Every store changed (that the stream follows), in the order the action first wrote them. */
  changes: StoreChange[]
  /** The writer's public tag, as in {@link StateEvent}. */
  writer: string
  /** The writer's op number. */
  opId: number
}

/**
 * Event ids are `<epoch>-<seq>`: the epoch is fixed for the life of one log, so an id from a
 * log that has since been replaced (a restarted in-memory server, say) is never taken for a
 * current one.
 */
export interface EventId {
  /** Names one log; a new epoch means the old ids mean nothing any more. */
  epoch: string
  /** The event's position in that log, from 1. */
  seq: number
}

/** Formats an event id. */
export function formatEventId(epoch: string, seq: number): string {
  return `${epoch}-${seq}`
}

/** Parses an event id; `undefined` when it is not one. */
export function parseEventId(id: string): EventId | undefined {
  const dash = id.lastIndexOf('-')
  if (dash <= 0 || dash === id.length - 1 || id.length > 64) return undefined
  const digits = id.slice(dash + 1)
  if (!/^\d{1,15}$/.test(digits)) return undefined
  return { epoch: id.slice(0, dash), seq: Number(digits) }
}

/** True when `value` is an integer in `0..Number.MAX_SAFE_INTEGER`. */
export function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** Parses a `stores=a,b` list: no parameter (`undefined`) means every store, an empty one (`stores=`) none. */
export function parseStoreList(value: string | null | undefined): string[] | undefined {
  if (value === null || value === undefined) return undefined
  return value === '' ? [] : value.split(',')
}
