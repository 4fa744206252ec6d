import { type BufferClass, NodeBuffer, utf8Bytes } from './bytes'
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
  /** Writes one frame; `false` means the buffers are full, so the stream waits for `drain`. */
  write(chunk: Uint8Array): boolean
  /** Ends the stream. */
  end(): unknown
  /** `drain`: room to write again; `close`: the client left. */
  on(event: 'drain' | 'close', listener: () => void): unknown
  /** The connection, written to directly when nothing sits between (the fast path of fan-out). */
  readonly socket: NodeSocket | null
  /** Whether Node frames this response in HTTP/1.1 chunks. */
  readonly chunkedEncoding?: boolean
  /** Bytes the response holds, its socket's included. */
  readonly writableLength: number
  /** Present under compression middleware, which buffers until told to flush. */
  flush?: () => void
}

/** Each frame's HTTP/1.1 chunk, built once and shared by every subscriber; freed with the frame. */
const chunks = new WeakMap<Uint8Array, Uint8Array>()
const CRLF = utf8Bytes('\r\n')

/** The chunk carrying `frame`: its size in hex, the bytes, CRLF. */
function chunkOf(frame: Uint8Array, buffer: BufferClass): Uint8Array {
  let chunk = chunks.get(frame)
  if (chunk === undefined) {
    chunk = buffer.concat([buffer.from(`${frame.byteLength.toString(16)}\r\n`), frame, CRLF])
    chunks.set(frame, chunk)
  }
  return chunk
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
    res.chunkedEncoding === true && res.flush === undefined && socket !== null && res.writableLength === socket.writableLength
  const buffer = direct ? NodeBuffer : undefined
  const subscription = open({
    write(frame) {
      if (buffer !== undefined) return (socket as NodeSocket).write(chunkOf(frame, buffer))
      const ok = res.write(frame)
      res.flush?.()
      return ok
    },
    close: () => res.end(),
  })
  const drained = () => subscription.drained()
  res.on('drain', drained)
  if (buffer !== undefined) socket?.on('drain', drained)
  res.on('close', () => {
    if (buffer !== undefined) socket?.off('drain', drained)
    subscription.close()
  })
}
