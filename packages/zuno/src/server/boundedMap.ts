/**
 * A map that keeps the `capacity` most recently added keys and forgets the oldest first, in O(1)
 * per write however long it runs. (Evicting through `map.keys().next()` is not O(1): V8 leaves
 * deleted entries in place until a rehash, so finding the oldest live key walks past every entry
 * deleted since; at 10,000 entries that cost microseconds on every write.)
 */
export class BoundedMap<K, V> implements Iterable<[K, V]> {
  readonly #map = new Map<K, V>()
  /** Keys in the order they were added, as a ring once full. */
  readonly #order: K[] = []
  #oldest = 0

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
  }

  get size(): number {
    return this.#map.size
  }

  get(key: K): V | undefined {
    return this.#map.get(key)
  }

  /** Adds or replaces; a replaced key keeps its place in line. */
  set(key: K, value: V): void {
    const size = this.#map.size
    this.#map.set(key, value)
    if (this.#map.size === size) return // replaced in place
    if (this.#order.length < this.capacity) {
      this.#order.push(key)
    } else {
      this.#map.delete(this.#order[this.#oldest] as K)
      this.#order[this.#oldest] = key
      this.#oldest = (this.#oldest + 1) % this.capacity
    }
  }

  /** Entries, oldest first. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.#map[Symbol.iterator]()
  }
}
