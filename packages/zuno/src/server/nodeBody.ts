import { ZunoError } from '../errors'
import { utf8Bytes, utf8Text } from './bytes'
import { tooLarge } from './syncServer'

/** The part of a Node.js `IncomingMessage` that reading a body needs. */
export interface NodeBodyStream {
  /** Receives the body a chunk at a time. */
  on(event: 'data', listener: (chunk: Uint8Array | string) => void): unknown
  /** The body is complete, or the client left. */
  on(event: 'end' | 'close', listener: () => void): unknown
  /** The connection failed while reading. */
  on(event: 'error', listener: (error: Error) => void): unknown
  /** Stops collecting past the limit, so an oversized body costs no memory. */
  removeAllListeners(event: 'data'): unknown
  /** Drains what is left of an oversized body, so the 413 can be answered on the same connection. */
  resume(): unknown
}

/**
 * Reads a Node.js request body as UTF-8 text, stopping at `limit` bytes. Past the limit it
 * rejects with `payload_too_large` and discards the rest, so the 413 can still be answered.
 */
export function readNodeBody(stream: NodeBodyStream, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = []
    let bytes = 0
    stream.on('data', (chunk) => {
      const data = typeof chunk === 'string' ? utf8Bytes(chunk) : chunk
      bytes += data.byteLength
      if (bytes > limit) {
        stream.removeAllListeners('data')
        stream.resume()
        reject(tooLarge(limit))
        return
      }
      chunks.push(data)
    })
    // A client that goes away mid-body gets no answer, but the promise must still settle,
    // and quietly: it is the client's doing, not the server's.
    // Node emits 'close' after every 'end' as well: only a close before the end is an error, and
    // only then is an error (with its stack trace) worth building.
    let ended = false
    const unreadable = () => {
      if (!ended) reject(new ZunoError('invalid_body', 'The request body ended early'))
    }
    stream.on('end', () => {
      ended = true
      resolve(utf8Text(chunks))
    })
    stream.on('error', unreadable)
    stream.on('close', unreadable)
  })
}
