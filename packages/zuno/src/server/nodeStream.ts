import type { SseSink, Subscription } from './hub'

/** The part of a Node.js socket an SSE stream writes to. */
interface NodeSocket {
  write(chunk: Uint8Array): boolean
  readonly writableLength: number
  on(event: 'drain', listener: () => void): unknown
  off(event: 'drain', listener: () => void): unknown
}

/** The part of a Node.js `ServerResponse` (or a framework's extension of one) an SSE stream needs. */
export interface NodeStreamResponse {
  write(chunk: Uint8Array): boolean
  end(): unknown
  on(event: 'drain' | 'close', listener: () => void): unknown
  readonly socket: NodeSocket | null
  /** Whether Node frames this response in HTTP/1.1 chunks. */
  readonly chunkedEncoding?: boolean
  /** Bytes the response holds, its socket's included. */
  readonly writableLength: number
  /** Present under compression middleware, which buffers until told to flush. */
  flush?: () => void
}

const NodeBuffer = (globalThis as { Buffer?: { from(text: string): Uint8Array; concat(list: Uint8Array[]): Uint8Array } }).Buffer
const CRLF = NodeBuffer?.from('\r\n')

/** Each frame's HTTP/1.1 chunk, built once and shared by every subscriber; freed with the frame. */
const chunks = new WeakMap<Uint8Array, Uint8Array>()

function chunkOf(frame: Uint8Array): Uint8Array {
  let chunk = chunks.get(frame)
  if (chunk === undefined && NodeBuffer !== undefined && CRLF !== undefined) {
    chunk = NodeBuffer.concat([NodeBuffer.from(`${frame.byteLength.toString(16)}\r\n`), frame, CRLF])
    chunks.set(frame, chunk)
  }
  return chunk as Uint8Array
}

/**
 * Feeds an open SSE response (headers sent) from a {@link Subscription}. Frames go straight to the
 * socket, already framed as HTTP/1.1 chunks, whenever Node would frame them so and holds nothing
 * of its own for the response: one write of bytes shared by all subscribers, instead of four per
 * subscriber through `http` (and through a framework's response, whose changed prototype makes
 * every call on it slower). Otherwise, such as under compression or HTTP/1.0, `res.write` as usual.
 * Backpressure is honoured either way: the subscription hears of a drain of the response or socket.
 */
export function streamToNodeResponse(res: NodeStreamResponse, open: (sink: SseSink) => Subscription): void {
  const socket = res.socket
  // Decided once: from here on only this stream writes to the response, so if the response holds
  // no bytes of its own now (its headers are on the socket), it never will.
  const direct =
    res.chunkedEncoding === true &&
    res.flush === undefined &&
    socket !== null &&
    NodeBuffer !== undefined &&
    res.writableLength === socket.writableLength
  const subscription = open({
    write(frame) {
      if (direct) return socket.write(chunkOf(frame))
      const ok = res.write(frame)
      res.flush?.()
      return ok
    },
    close: () => res.end(),
  })
  const drained = () => subscription.drained()
  res.on('drain', drained)
  if (direct) socket.on('drain', drained)
  res.on('close', () => {
    if (direct) socket.off('drain', drained)
    subscription.close()
  })
}
