import type { CommittedEvent } from '../server/storage'

/**
 * The last committed events, oldest first, bounded in count and in bytes: what a restarted
 * server can replay to resuming clients. Only the oldest are dropped, so the kept events stay
 * contiguous and end at the newest.
 */
export class RecentEvents {
  #events: CommittedEvent[] = []
  #sizes: number[] = []
  #head = 0
  #bytes = 0

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {}

  /** Keeps `event`, which takes `bytes` (its log line), dropping the oldest as needed. */
  push(event: CommittedEvent, bytes: number): void {
    this.#events.push(event)
    this.#sizes.push(bytes)
    this.#bytes += bytes
    while (this.#head < this.#events.length && (this.#events.length - this.#head > this.maxCount || this.#bytes > this.maxBytes)) {
      this.#bytes -= this.#sizes[this.#head] ?? 0
      this.#events[this.#head] = undefined as unknown as CommittedEvent // let the state go now
      this.#head += 1
    }
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head)
      this.#sizes = this.#sizes.slice(this.#head)
      this.#head = 0
    }
  }

  /** The kept events, oldest first; empties this. */
  take(): CommittedEvent[] {
    const events = this.#events.slice(this.#head)
    this.#events = []
    this.#sizes = []
    this.#head = 0
    this.#bytes = 0
    return events
  }
}
