import { ZunoError } from '../errors'
import type { StorageHealth } from '../server/storage'
import type { FileSystem } from './fileSystem'
import { writeAll } from './fileSystem'

/** When the log is flushed to disk. */
export type FsyncPolicy =
  /** Before every acknowledgement: an acknowledged write survives a power cut. The default. */
  | 'always'
  /** At most every `fsyncIntervalMs`: a crash of the process loses nothing, a power cut the last moments. */
  | 'interval'
  /** Left to the operating system. */
  | 'never'

/**
 * The append-only log file, opened on a known-good length. A write or flush that fails puts it in
 * `failed`: appends throw (nothing is acknowledged) until {@link LogFile.recover} has cut the file
 * back to the known-good length and flushed that, which a timer retries while failed.
 */
export class LogFile {
  /** Bytes known good: every line up to here was written whole (and, with `'always'`, flushed). */
  #length: number
  #failure: string | undefined
  #dirty = false
  #retryTimer: ReturnType<typeof setInterval> | undefined
  #flushTimer: ReturnType<typeof setInterval> | undefined

  constructor(
    readonly fs: FileSystem,
    readonly fd: number,
    length: number,
    readonly policy: FsyncPolicy,
    readonly options: { fsyncIntervalMs: number; retryEveryMs: number },
  ) {
    this.#length = length
    if (policy === 'interval') {
      this.#flushTimer = setInterval(() => this.flush(), options.fsyncIntervalMs)
      unref(this.#flushTimer)
    }
  }

  get length(): number {
    return this.#length
  }

  health(): StorageHealth {
    return this.#failure === undefined ? { ok: true } : { ok: false, reason: this.#failure }
  }

  /** Appends `bytes` durably (per the policy), or throws `unavailable` having acknowledged nothing. */
  append(bytes: Uint8Array): void {
    this.refuseIfFailed()
    try {
      writeAll(this.fs, this.fd, bytes)
      if (this.policy === 'always') this.fs.fsyncSync(this.fd)
    } catch (error) {
      this.#fail(`writing the log failed (${message(error)})`)
      throw new ZunoError('unavailable', `The storage failed: ${this.#failure}`, { retryAfter: 1, cause: error })
    }
    this.#length += bytes.length
    if (this.policy !== 'always') this.#dirty = true
  }

  /** With `'interval'` (and on close): flushes what was written since the last flush. */
  flush(): void {
    if (!this.#dirty || this.#failure !== undefined) return
    try {
      this.fs.fsyncSync(this.fd)
      this.#dirty = false
    } catch (error) {
      this.#fail(`flushing the log failed (${message(error)})`)
    }
  }

  /**
   * Empties the log after a snapshot took in all of it. Does not throw: if it fails the log goes
   * `failed` with an empty log as its known-good state (the snapshot has every line), so recovery
   * completes the truncation.
   */
  reset(): void {
    this.#length = 0
    try {
      this.fs.ftruncateSync(this.fd, 0)
      this.fs.fsyncSync(this.fd)
      this.#dirty = false
    } catch (error) {
      this.#fail(`emptying the log after a snapshot failed (${message(error)})`)
    }
  }

  /**
   * Leaves `failed` if the disk takes writes again: cuts the file back to the known-good length and
   * flushes the cut. Returns whether the log is healthy.
   *
   * The bytes of a failed write may be on disk, whole or in part. They are cut away, and the cut
   * flushed, before anything else is written, rather than their seq being skipped: a torn line left
   * in the middle of the log would stop recovery there (losing every write after it), and a whole
   * line left there would come back at restart as a write nobody was told of. Once the cut is on
   * disk no copy of the failed line exists anywhere (it was never fanned out), so its seq can carry
   * the next write without any reader ever seeing two contents for one event id.
   */
  recover(): boolean {
    if (this.#failure === undefined) return true
    try {
      this.fs.ftruncateSync(this.fd, this.#length)
      this.fs.fsyncSync(this.fd)
    } catch {
      return false
    }
    this.#failure = undefined
    this.#dirty = false
    if (this.#retryTimer !== undefined) clearInterval(this.#retryTimer)
    this.#retryTimer = undefined
    return true
  }

  /** Flushes and closes the file; stops the timers. */
  close(): void {
    if (this.#flushTimer !== undefined) clearInterval(this.#flushTimer)
    if (this.#retryTimer !== undefined) clearInterval(this.#retryTimer)
    this.flush()
    this.fs.closeSync(this.fd)
  }

  /** Throws `unavailable` while failed. */
  refuseIfFailed(): void {
    if (this.#failure !== undefined) throw new ZunoError('unavailable', `The storage failed: ${this.#failure}`, { retryAfter: 1 })
  }

  #fail(reason: string): void {
    this.#failure = reason
    if (this.#retryTimer === undefined && this.options.retryEveryMs > 0) {
      this.#retryTimer = setInterval(() => this.recover(), this.options.retryEveryMs)
      unref(this.#retryTimer)
    }
  }
}

function unref(timer: ReturnType<typeof setInterval>): void {
  ;(timer as { unref?: () => void }).unref?.()
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
