/**
 * The writer tags of the client ids this replica proposes under (see `writerTag`): it knows its own
 * ops on the stream by them. They are computed with WebCrypto, so a browser bundle carries no
 * SHA-256 code; where WebCrypto is missing (a page on plain http from a host other than localhost),
 * the library's own SHA-256 is loaded then, as a chunk of its own.
 */
import { clientIdBytes, writerTagOfDigest } from '../protocol'
import { loadSha256 } from './sha256Fallback'

/** What is needed of `crypto.subtle` (which it, and Node.js's `webcrypto.subtle`, satisfy). */
export interface DigestLike {
  /** The SHA-256 digest of `data` (as `crypto.subtle.digest` computes it). */
  digest(algorithm: 'SHA-256', data: ArrayBuffer): Promise<ArrayBuffer>
}

/** How long a digest may take before Zuno's own SHA-256 is used: no op waits on one that never comes. */
const DIGEST_PATIENCE_MS = 2000

/** `promise`'s value, or `undefined` if it has not settled within `ms`. */
function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/**
 * The writer tag of `clientId`, the same as `writerTag(clientId)` computes synchronously: with
 * `subtle` (default `crypto.subtle`), or with Zuno's own SHA-256 where there is none or it is `null`.
 */
export async function computeWriterTag(clientId: string, subtle: DigestLike | null | undefined = globalThis.crypto?.subtle): Promise<string> {
  const bytes = clientIdBytes(clientId)
  if (subtle !== undefined && subtle !== null) {
    try {
      const answer = await settledWithin(subtle.digest('SHA-256', bytes.buffer), DIGEST_PATIENCE_MS)
      const digest = answer === undefined ? undefined : new Uint8Array(answer)
      // Anything but 32 bytes is not a SHA-256: a wrong tag would hide the replica's own ops from it.
      if (digest?.length === 32) return writerTagOfDigest(digest)
    } catch {
      // A WebCrypto that refuses (some embedded browsers): Zuno's own SHA-256 gives the same tag.
    }
  }
  const sha256 = await loadSha256()
  return writerTagOfDigest(sha256(bytes))
}

/** The tags of this replica's client ids, each computed once, before any op goes out under it. */
export class WriterTags {
  readonly #known = new Map<string, string>()
  readonly #learning = new Map<string, Promise<string>>()
  readonly #compute: (clientId: string) => Promise<string>

  constructor(compute: (clientId: string) => Promise<string>) {
    this.#compute = compute
  }

  /** The tag of `clientId`, once learned; until then no op has gone out under it, so no event is ours. */
  of(clientId: string): string | undefined {
    return this.#known.get(clientId)
  }

  /** Computes the tag of `clientId` (once; a failed attempt is tried afresh by the next call). */
  learn(clientId: string): Promise<string> {
    const known = this.#known.get(clientId)
    if (known !== undefined) return Promise.resolve(known)
    let learning = this.#learning.get(clientId)
    if (learning === undefined) {
      learning = this.#compute(clientId).then(
        (tag) => {
          this.#known.set(clientId, tag)
          this.#learning.delete(clientId)
          return tag
        },
        (error: unknown) => {
          this.#learning.delete(clientId)
          throw error
        },
      )
      this.#learning.set(clientId, learning)
    }
    return learning
  }
}
