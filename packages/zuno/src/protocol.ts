/**
 * Wire protocol v2: every constant and message shape that the client and the server share.
 * `docs/protocol.md` describes the same protocol in prose (and `docs/design/protocol-v2.md` why);
 * keep them in step.
 */

import { sha256 } from './sha256'

/** Version of the wire protocol described in `docs/protocol.md`. */
export const PROTOCOL_VERSION = 2

/** The header (and, on `GET /sse`, the `v` query parameter) that names the protocol version. */
export const PROTOCOL_HEADER = 'zuno-protocol'

/** Where adapters mount the endpoints unless told otherwise. */
export const DEFAULT_PREFIX = '/zuno'

/** Endpoint paths, relative to the prefix. */
export const PATHS = {
  sync: '/sync',
  sse: '/sse',
  state: '/state',
} as const

/** SSE event names. */
export const SSE_EVENTS = {
  snapshot: 'snapshot',
  state: 'state',
  /** The replay of a resumed stream is complete: the client is current again. */
  resumed: 'resumed',
  /** The server is dropping this stream (it fell too far behind): reconnect for a snapshot. */
  resync: 'resync',
} as const

/** A store key: a letter or digit, then up to 127 of letters, digits and `._:-`. */
export const STORE_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/**
 * A client id: 16 and 22 random base64url characters, joined by a dot (228 random bits). It never
 * leaves the client's proposals; events name their writer by {@link writerTag} of it.
 */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}$/

/** An epoch: letters and digits, as event ids carry it. */
export const EPOCH_PATTERN = /^[A-Za-z0-9]{1,48}$/

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const tags = new Map<string, string>()

/**
 * What the stream shows of the writer of an event: the first 96 bits of the SHA-256 of its client
 * id, in base64url. The writer recognises its own ops by it; nobody can make an id with a given
 * tag, so nobody can pass their ops off as someone else's.
 */
export function writerTag(clientId: string): string {
  let tag = tags.get(clientId)
  if (tag !== undefined) return tag
  const bytes = new Uint8Array(clientId.length)
  for (let i = 0; i < clientId.length; i++) bytes[i] = clientId.charCodeAt(i) & 0xff
  const digest = sha256(bytes)
  tag = ''
  for (let i = 0; i < 12; i += 3) {
    const n = ((digest[i] as number) << 16) | ((digest[i + 1] as number) << 8) | (digest[i + 2] as number)
    tag += `${BASE64URL[n >>> 18]}${BASE64URL[(n >>> 12) & 63]}${BASE64URL[(n >>> 6) & 63]}${BASE64URL[n & 63]}`
  }
  if (tags.size >= 4096) tags.clear() // a cache of the ids seen lately, not a registry
  tags.set(clientId, tag)
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
  bad_json: 400,
  invalid_body: 400,
  invalid_store_key: 400,
  invalid_base_version: 400,
  missing_state: 400,
  invalid_client_id: 400,
  invalid_op_id: 400,
  invalid_epoch: 400,
  unsupported_protocol: 400,
  too_deep: 400,
  unauthenticated: 401,
  forbidden: 403,
  origin_not_allowed: 403,
  store_limit: 403,
  store_not_allowed: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  /** The op's epoch is not the server's: wait for the new epoch's snapshot, then re-propose. */
  epoch_changed: 409,
  /** The server keeps no record of this client (forgotten, or a new storage): take a fresh identity. */
  unknown_client: 409,
  /** This opId was processed with another store or payload: a client bug, never answered with another op's answer. */
  op_id_reused: 409,
  payload_too_large: 413,
  state_too_large: 413,
  unsupported_media_type: 415,
  invalid_state: 422,
  rate_limited: 429,
  unavailable: 503,
  too_many_streams: 503,
  shutting_down: 503,
  // Client-side only: never sent by a server.
  network: 0,
  protocol: 0,
  closed: 0,
  queue_full: 0,
  update_failed: 0,
  read_only: 0,
  /** A store was given another initial state than the one declared for it. */
  initial_mismatch: 0,
  /** The op was sent, never answered, and then the server forgot its client or something refused its retry: it may or may not have been applied. */
  outcome_unknown: 0,
  /** Something in front of the server answered `POST /sync` with a redirect, which Zuno never sends. */
  redirected: 0,
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
])

/** Body of `POST /sync`: propose `state` as the next version of `storeKey`. */
export interface SyncRequest<T = unknown> {
  storeKey: string
  /** The version the proposal was made on; accepted only if it is still the current one. */
  baseVersion: number
  /** The epoch of that version (from the event ids the client has seen). */
  epoch: string
  state: T
  /** Identifies the proposing client (see {@link CLIENT_ID_PATTERN}); with `opId` it makes retries idempotent. */
  clientId: string
  /** Per-client operation number: 1, 2, 3, … in the order the client issued its ops. */
  opId: number
}

/** 200 answer to `POST /sync`. */
export interface SyncAccepted<T = unknown> {
  ok: true
  storeKey: string
  version: number
  state: T
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
  ok: false
  error: 'conflict'
  storeKey: string
  version: number
  state: T
}

/** Every other non-2xx answer. */
export interface ErrorBody {
  ok: false
  error: ErrorCode
  message: string
  /** With `invalid_state`: what the store's schema found wrong. */
  issues?: readonly SchemaIssue[]
}

/** One problem a schema found, as Standard Schema reports it. */
export interface SchemaIssue {
  message: string
  path?: ReadonlyArray<string | number>
}

/** One store as it stands at some cursor. */
export interface StoreState<T = unknown> {
  version: number
  state: T
}

/** Data of the `snapshot` SSE event, and body of `GET /state` (which adds `cursor`). */
export interface SnapshotMessage {
  stores: Record<string, StoreState>
}

/** Body of `GET /state`. Pass `cursor` as `lastEventId` to `/sse` to continue without a gap. */
export interface StateResponse extends SnapshotMessage {
  cursor: string
}

/** Data of the `state` SSE event: one accepted change. */
export interface StateEvent<T = unknown> {
  storeKey: string
  version: number
  state: T
  /** The writer's public tag ({@link writerTag} of its client id): a writer recognises its own ops by it. */
  writer: string
  opId: number
}

/**
 * Event ids are `<epoch>-<seq>`: the epoch is fixed for the life of one log, so an id from a
 * log that has since been replaced (a restarted in-memory server, say) is never taken for a
 * current one.
 */
export interface EventId {
  epoch: string
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
