import { ZunoError } from '../errors'
import { BoundedMap } from './boundedMap'

/**
 * Token buckets per key: `rate` proposals a second on average, bursts up to `burst`. Bounded: past
 * `capacity` keys the oldest buckets are forgotten first (a forgotten bucket starts full again).
 */
export class RateLimiter {
  readonly #buckets: BoundedMap<string, { tokens: number; at: number }>

  constructor(
    readonly rate: number,
    readonly burst: number,
    /** What is limited, for the error's message. */
    readonly what = 'proposals a second',
    readonly capacity = 100_000,
    /** Monotonic: a step of the wall clock neither empties nor fills the buckets. */
    readonly now: () => number = () => performance.now(),
  ) {
    this.#buckets = new BoundedMap(capacity)
  }

  /** Takes `count` tokens for `key`, or none and throws `rate_limited` with the seconds until there are as many. */
  take(key: string, count = 1): void {
    const now = this.now()
    let bucket = this.#buckets.get(key)
    if (bucket === undefined) this.#buckets.set(key, (bucket = { tokens: this.burst, at: now }))
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    bucket.at = now
    if (bucket.tokens < count) {
      const retryAfter = Math.ceil((count - bucket.tokens) / this.rate)
      throw new ZunoError('rate_limited', `More than ${this.rate} ${this.what}; slow down`, { retryAfter })
    }
    bucket.tokens -= count
  }
}

/** For at most this long a refused, too-large body is still read (and dropped), ms. */
export const DISCARD_MS = 2000

/**
 * How much of a refused, too-large body is read and dropped before the connection closes: enough
 * that a client still sending reads the 413 instead of EPIPE, bounded so nobody can keep us reading.
 */
export function discardBudget(limit: number): number {
  return Math.max(2 * limit, 16 * 1024 * 1024)
}

/** Counts open streams, in all and per principal, and refuses past either limit. */
export class StreamLimiter {
  #total = 0
  readonly #perPrincipal = new Map<string, number>()

  constructor(
    readonly maxTotal: number,
    readonly maxPerPrincipal: number,
    readonly random: () => number = Math.random,
  ) {}

  /** Reserves a place, or throws `too_many_streams` with a jittered Retry-After; returns its release. */
  open(principalId: string | undefined): () => void {
    const mine = principalId === undefined ? 0 : (this.#perPrincipal.get(principalId) ?? 0)
    if (this.#total >= this.maxTotal || mine >= this.maxPerPrincipal) {
      // Spread the retries out, so a crowd turned away does not come back all at once.
      const retryAfter = 1 + Math.floor(this.random() * 10)
      throw new ZunoError('too_many_streams', 'Too many open streams; try again shortly', { retryAfter })
    }
    this.#total += 1
    if (principalId !== undefined) this.#perPrincipal.set(principalId, mine + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#total -= 1
      if (principalId === undefined) return
      const left = (this.#perPrincipal.get(principalId) ?? 1) - 1
      if (left === 0) this.#perPrincipal.delete(principalId)
      else this.#perPrincipal.set(principalId, left)
    }
  }
}
