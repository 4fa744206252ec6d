import type { ZunoError } from '../errors'
import type { Timers } from './connection'

/** How often a held replica reads `token()` to see whether the app has a new one. No request is made. */
const TOKEN_CHECK_MS = 1000

/**
 * What a replica does after the server refused its credentials (401, or a 403 on the stream): it
 * stops asking, since asking again with the same credentials gets the same answer, and holds its
 * ops (neither rejected nor dropped) until the app's `token()` gives another token or the app
 * calls `retry()`. Then `release` runs, and the replica sends what it held.
 */
export class CredentialHold {
  readonly #token: (() => string | undefined) | undefined
  readonly #timers: Timers
  readonly #release: () => void
  #refusal: ZunoError | undefined
  #refusedToken: string | undefined
  #timer: unknown

  constructor(token: (() => string | undefined) | undefined, timers: Timers, release: () => void) {
    this.#token = token
    this.#timers = timers
    this.#release = release
  }

  /** Why the replica is held (`unauthenticated`, `forbidden`, …), or `undefined` when it is not. */
  get refusal(): ZunoError | undefined {
    return this.#refusal
  }

  /** The server refused the current credentials: hold, and watch `token()` for new ones. */
  hold(refusal: ZunoError): void {
    const watching = this.#refusal !== undefined
    this.#refusal = refusal
    if (watching) return
    this.#refusedToken = this.#token?.()
    this.#watch()
  }

  /** Lets go without telling the replica (it is retrying by itself). */
  clear(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#refusal = undefined
  }

  #watch(): void {
    if (this.#token === undefined) return
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined
      if (this.#refusal === undefined) return
      if (this.#token?.() === this.#refusedToken) return this.#watch()
      this.clear()
      this.#release()
    }, TOKEN_CHECK_MS)
  }
}
