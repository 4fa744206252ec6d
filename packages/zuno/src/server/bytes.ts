/** UTF-8 bytes for the server modules, through Node's `Buffer` where there is one (Node, Bun). */

export interface BufferClass {
  from(text: string): Uint8Array
  from(memory: ArrayBufferLike, offset: number, length: number): DecodableBytes
  concat(list: Uint8Array[]): Uint8Array
  byteLength(text: string): number
  isBuffer(value: unknown): boolean
}

/** A Node.js `Buffer`, as far as decoding goes. */
type DecodableBytes = Uint8Array & { toString(encoding: 'utf8'): string }

/** The Node.js `Buffer` class where there is one, without needing Node's types. */
export const NodeBuffer = (globalThis as { Buffer?: BufferClass }).Buffer

// Made when first needed (only where there is no Buffer), so that loading this module needs neither.
let encoder: TextEncoder | undefined
let decoder: TextDecoder | undefined

/**
 * The UTF-8 bytes of a text. On Node a `Buffer`: `http` writes one as it is, while a plain
 * `Uint8Array` costs it extra work on every write, and an SSE frame is written once per subscriber.
 */
export function utf8Bytes(text: string): Uint8Array {
  return NodeBuffer === undefined ? (encoder ??= new TextEncoder()).encode(text) : NodeBuffer.from(text)
}

/**
 * The UTF-8 text of some bytes, invalid sequences replaced (as `TextDecoder` does). Through
 * `Buffer` where there is one: a request body is decoded once per request, and a `TextDecoder`
 * costs more than the JSON it holds for small bodies.
 */
export function utf8Text(chunks: readonly Uint8Array[]): string {
  if (NodeBuffer === undefined) {
    decoder ??= new TextDecoder()
    let text = ''
    for (const chunk of chunks) text += decoder.decode(chunk, { stream: true })
    return text + decoder.decode()
  }
  const bytes = chunks.length === 1 ? (chunks[0] as Uint8Array) : NodeBuffer.concat(chunks as Uint8Array[])
  // A Buffer (what Node's streams give) decodes itself; a plain Uint8Array needs a Buffer view first.
  if (NodeBuffer.isBuffer(bytes)) return (bytes as DecodableBytes).toString('utf8')
  return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}

/** How many bytes a text takes in UTF-8 (0 for none), without encoding it where `Buffer` can count. */
export function utf8Length(text: string | undefined): number {
  if (text === undefined) return 0
  return NodeBuffer === undefined ? (encoder ??= new TextEncoder()).encode(text).byteLength : NodeBuffer.byteLength(text)
}
