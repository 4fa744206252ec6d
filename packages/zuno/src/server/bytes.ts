/** UTF-8 bytes for the server modules, through Node's `Buffer` where there is one (Node, Bun). */

export interface BufferClass {
  from(text: string): Uint8Array
  concat(list: Uint8Array[]): Uint8Array
  byteLength(text: string): number
}

/** The Node.js `Buffer` class where there is one, without needing Node's types. */
export const NodeBuffer = (globalThis as { Buffer?: BufferClass }).Buffer

const encoder = new TextEncoder()

/**
 * The UTF-8 bytes of a text. On Node a `Buffer`: `http` writes one as it is, while a plain
 * `Uint8Array` costs it extra work on every write, and an SSE frame is written once per subscriber.
 */
export function utf8Bytes(text: string): Uint8Array {
  return NodeBuffer === undefined ? encoder.encode(text) : NodeBuffer.from(text)
}

/** How many bytes a text takes in UTF-8 (0 for none), without encoding it where `Buffer` can count. */
export function utf8Length(text: string | undefined): number {
  if (text === undefined) return 0
  return NodeBuffer === undefined ? encoder.encode(text).byteLength : NodeBuffer.byteLength(text)
}
