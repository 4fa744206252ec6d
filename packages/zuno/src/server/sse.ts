import { type CommitEvent, PROTOCOL_HEADER, PROTOCOL_VERSION, type PresenceMessage, SSE_EVENTS, type SnapshotMessage, type StateEvent, type StoreChange } from '../protocol'
import { utf8Bytes as encode } from './bytes'
import type { CommittedChange, CommittedEvent } from './storage'

/** Response headers of every SSE stream: never cached, transformed (compressed) or buffered. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
  [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
}

/**
 * The frame of a committed event: `state` for one store, `commit` for several; with `patches`
 * false, every change whole (for a stream whose client does not read patches).
 */
export function encodeEventFrame(event: CommittedEvent, patches = true): Uint8Array {
  // Every change visible: never undefined.
  return event.changes === undefined ? encodeStateFrame(event, patches) : (encodeCommitFrame(event, undefined, patches) as Uint8Array)
}

/** Whether an event carries a patch anywhere: only then does a stream of whole states need a frame of its own. */
export function hasPatch(event: CommittedEvent): boolean {
  return event.changes === undefined ? event.patch !== undefined : event.changes.some((change) => change.patch !== undefined)
}

/**
 * The frame of a commit of several stores, as a stream that sees only the stores `visible` admits
 * sees it (all of them when `undefined`): a `commit` frame for two or more, a `state` frame for one,
 * `undefined` for none. A stream is never told of a store it does not follow or may not read.
 */
export function encodeCommitFrame(event: CommittedEvent, visible: ((storeKey: string) => boolean) | undefined, patches = true): Uint8Array | undefined {
  const changes: StoreChange[] = []
  for (const change of event.changes ?? [event]) {
    if (visible === undefined || visible(change.storeKey)) changes.push(wireChange(change, patches))
  }
  if (changes.length === 0) return undefined
  const { writer, opId } = event
  if (changes.length === 1) {
    const data = { ...(changes[0] as StoreChange), writer, opId }
    return encode(`id: ${event.id}\nevent: ${SSE_EVENTS.state}\ndata: ${JSON.stringify(data)}\n\n`)
  }
  const data: CommitEvent = { changes, writer, opId }
  return encode(`id: ${event.id}\nevent: ${SSE_EVENTS.commit}\ndata: ${JSON.stringify(data)}\n\n`)
}

/**
 * A change as a stream carries it: with its patch, to a stream that reads patches, when it has one
 * (the universe keeps a patch only when it is shorter than the state it made), else with its state.
 */
function wireChange({ storeKey, version, state, patch, deleted }: CommittedChange, patches: boolean): StoreChange {
  if (deleted) return { storeKey, version, deleted: true } as StoreChange
  if (patches && patch !== undefined) return { storeKey, version, patch } as StoreChange
  return { storeKey, version, state }
}

/** The `state` frame of one committed event. JSON never contains a raw newline, so one data line. */
export function encodeStateFrame(event: CommittedEvent, patches = true): Uint8Array {
  const data: StateEvent = { ...wireChange(event, patches), writer: event.writer, opId: event.opId }
  return encode(`id: ${event.id}\nevent: ${SSE_EVENTS.state}\ndata: ${JSON.stringify(data)}\n\n`)
}

/** The `snapshot` frame: every readable store as of `cursor`. */
export function encodeSnapshotFrame(cursor: string, snapshot: SnapshotMessage): Uint8Array {
  return encode(`id: ${cursor}\nevent: ${SSE_EVENTS.snapshot}\ndata: ${JSON.stringify(snapshot)}\n\n`)
}

/** Tells the client how long to wait before reconnecting. */
export function encodeRetryHint(retryMs: number): Uint8Array {
  return encode(`retry: ${retryMs}\n\n`)
}

/** A comment line: keeps idle connections (and the proxies on the way) alive. */
export const HEARTBEAT_FRAME: Uint8Array = encode(': ping\n\n')

/** Sent as a stream is dropped for falling behind: the client should reconnect for a snapshot. */
export const RESYNC_FRAME: Uint8Array = encode(`event: ${SSE_EVENTS.resync}\ndata: {}\n\n`)

/** Ends the replay of a resumed stream: from here on the client is current. */
export const RESUMED_FRAME: Uint8Array = encode(`event: ${SSE_EVENTS.resumed}\ndata: {}\n\n`)

/** The `hello` frame: the stream's id, for `POST /subscribe`. */
export function encodeHelloFrame(streamId: string): Uint8Array {
  return encode(`event: ${SSE_EVENTS.hello}\ndata: ${JSON.stringify({ streamId })}\n\n`)
}

/** The `followed` frame: stores the stream now follows, as of `cursor` (which becomes its position). */
export function encodeFollowedFrame(cursor: string, followed: SnapshotMessage): Uint8Array {
  return encode(`id: ${cursor}\nevent: ${SSE_EVENTS.followed}\ndata: ${JSON.stringify(followed)}\n\n`)
}

/** The `revoked` frame: stores the stream no longer carries. */
export function encodeRevokedFrame(storeKeys: readonly string[]): Uint8Array {
  return encode(`event: ${SSE_EVENTS.revoked}\ndata: ${JSON.stringify({ stores: storeKeys })}\n\n`)
}

/** The `presence` frame of a room's changes (or of the whole room): encoded once, written to every stream in the room. */
export function encodePresenceFrame(message: PresenceMessage): Uint8Array {
  return encode(`event: ${SSE_EVENTS.presence}\ndata: ${JSON.stringify(message)}\n\n`)
}
