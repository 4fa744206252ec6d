import { PROTOCOL_HEADER, PROTOCOL_VERSION, SSE_EVENTS, type SnapshotMessage, type StateEvent } from '../protocol'
import { utf8Bytes as encode } from './bytes'
import type { CommittedEvent } from './storage'

/** Response headers of every SSE stream: never cached, transformed (compressed) or buffered. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
  [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
}

/** The `state` frame of one committed event. JSON never contains a raw newline, so one data line. */
export function encodeStateFrame(event: CommittedEvent): Uint8Array {
  const data: StateEvent = {
    storeKey: event.storeKey,
    version: event.version,
    state: event.state,
    writer: event.writer,
    opId: event.opId,
  }
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
