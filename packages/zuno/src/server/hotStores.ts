/**
 * Which stores a universe on a storage read lazily keeps in memory: those in use (pinned while a
 * request or a proposal works on them) and, past them, the `limit` most recently used. Stores the
 * universe must always hold (declared by their key, or held by server code through `store()`) are
 * never entered here, so they are never evicted.
 */
export class HotStores {
  /** Evictable stores in memory, least recently used first (a Map keeps insertion order). */
  readonly #recent = new Map<string, true>()
  /** How many users each pinned store has. */
  readonly #pins = new Map<string, number>()

  constructor(
    /** How many stores beyond the pinned ones stay in memory. */
    readonly limit: number,
    /** Drops a store from memory. */
    private readonly evict: (key: string) => void,
  ) {}

  /** How many evictable stores are in memory now (pinned ones included). */
  get size(): number {
    return this.#recent.size
  }

  /** A store just read into memory: the most recently used; the least recently used go past the limit. */
  add(key: string): void {
    this.#recent.delete(key)
    this.#recent.set(key, true)
    this.#trim()
  }

  /** A store that stays in memory for good from now on: no longer counted or evicted here. */
  remove(key: string): void {
    this.#recent.delete(key)
  }

  /** A store used again: the most recently used. */
  touch(key: string): void {
    if (this.#recent.delete(key)) this.#recent.set(key, true)
  }

  /** Keeps the stores in memory until {@link unpin}: a request reads them after an await. */
  pin(keys: Iterable<string>): void {
    for (const key of keys) this.#pins.set(key, (this.#pins.get(key) ?? 0) + 1)
  }

  /** Ends one {@link pin} of each; the limit then applies to them again. */
  unpin(keys: Iterable<string>): void {
    for (const key of keys) {
      const users = (this.#pins.get(key) ?? 1) - 1
      if (users > 0) this.#pins.set(key, users)
      else this.#pins.delete(key)
    }
    this.#trim()
  }

  /** Forgets every store (a new epoch): the universe drops them itself. */
  clear(): void {
    this.#recent.clear()
  }

  #trim(): void {
    let excess = this.#recent.size - this.limit
    if (excess <= 0) return
    // Pinned stores are skipped, not counted: while in use, the set may exceed the limit by them.
    for (const key of this.#recent.keys()) {
      if (excess <= 0) break
      if (this.#pins.has(key)) continue
      this.#recent.delete(key)
      this.evict(key)
      excess -= 1
    }
  }
}
