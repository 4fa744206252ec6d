/**
 * The seqs and sizes of the rows the `events` table keeps: the last events, bounded in count and in
 * bytes (the newest is kept whatever its size). A commit asks first which rows its event pushes out
 * ({@link EventWindow.plan}), deletes them in its transaction, and applies the plan once it is durable.
 */
export class EventWindow {
  #seqs: number[] = []
  #sizes: number[] = []
  #head = 0
  #bytes = 0
  /** Every row up to this seq is known deleted. */
  #trimmedTo = 0

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {
    if (!Number.isSafeInteger(maxCount) || maxCount < 1) throw new RangeError('recent must be a positive integer')
    if (!(maxBytes > 0)) throw new RangeError('recentBytes must be positive')
  }

  /** Keeps a row found at start (oldest first). */
  restore(seq: number, bytes: number): void {
    this.#seqs.push(seq)
    this.#sizes.push(bytes)
    this.#bytes += bytes
  }

  /** How many kept rows adding one of `bytes` pushes out, and the seq to delete up to (`undefined`: nothing to delete). */
  plan(seq: number, bytes: number): { drop: number; deleteTo: number | undefined } {
    let count = this.#seqs.length - this.#head + 1
    let total = this.#bytes + bytes
    let drop = 0
    while (count > 1 && (count > this.maxCount || total > this.maxBytes)) {
      total -= this.#sizes[this.#head + drop] as number
      drop += 1
      count -= 1
    }
    // Everything older than the oldest row kept, which also clears rows left by larger bounds before a restart.
    const oldestKept = count > 1 ? (this.#seqs[this.#head + drop] as number) : seq
    return { drop, deleteTo: oldestKept - 1 > this.#trimmedTo ? oldestKept - 1 : undefined }
  }

  /** Applies a plan once its transaction committed. */
  apply(plan: { drop: number; deleteTo: number | undefined }, seq: number, bytes: number): void {
    for (let i = 0; i < plan.drop; i++) this.#bytes -= this.#sizes[this.#head + i] as number
    this.#head += plan.drop
    this.#seqs.push(seq)
    this.#sizes.push(bytes)
    this.#bytes += bytes
    if (plan.deleteTo !== undefined) this.#trimmedTo = plan.deleteTo
    if (this.#head > 1024 && this.#head * 2 > this.#seqs.length) {
      this.#seqs = this.#seqs.slice(this.#head)
      this.#sizes = this.#sizes.slice(this.#head)
      this.#head = 0
    }
  }
}
