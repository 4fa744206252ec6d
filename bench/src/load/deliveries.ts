/**
 * Counts deliveries per event across many subscribers and keeps, per event, when the last
 * subscriber got it: the fan-out figures come from here, the same for every server.
 */
export interface DeliveryReport {
  /** Per event: ms from its commit stamp to its arrival at the last subscriber. */
  latencies: number[]
  delivered: number
  /** Stamp of the first event and arrival of the last delivery, monotonic ms. */
  firstStamp: number
  lastArrival: number
  complete: boolean
}

export class Deliveries {
  readonly #counts: number[] = []
  readonly #lastArrival: number[] = []
  readonly #stamps: number[] = []

  /** One subscriber got event `seq`; `stamp` reads the event's commit time (called once per event). */
  record(seq: number, now: number, stamp: () => number): void {
    const count = (this.#counts[seq] ?? 0) + 1
    this.#counts[seq] = count
    this.#lastArrival[seq] = now
    if (count === 1) this.#stamps[seq] = stamp()
  }

  /**
   * Waits until events `first`..`first+count-1` each reached `expected` subscribers (or, where
   * they differ, `expected[seq - first]`), or the timeout. It polls: arrival times are taken as deliveries happen, so the poll costs no accuracy.
   */
  async wait(first: number, count: number, expected: number | readonly number[], timeoutMs: number): Promise<DeliveryReport> {
    const end = first + count
    const expectedOf = typeof expected === 'number' ? () => expected : (seq: number) => expected[seq - first] ?? 0
    const complete = () => {
      for (let seq = first; seq < end; seq++) if ((this.#counts[seq] ?? 0) < expectedOf(seq)) return false
      return true
    }
    const deadline = Date.now() + timeoutMs
    while (!complete() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    const latencies: number[] = []
    let delivered = 0
    let lastArrival = 0
    for (let seq = first; seq < end; seq++) {
      delivered += this.#counts[seq] ?? 0
      const arrival = this.#lastArrival[seq] ?? Number.NaN
      latencies.push(arrival - (this.#stamps[seq] ?? Number.NaN))
      if (arrival > lastArrival) lastArrival = arrival
    }
    return { latencies, delivered, firstStamp: this.#stamps[first] ?? Number.NaN, lastArrival, complete: complete() }
  }
}

/** Runs `task` over `items` with at most `limit` at a time. */
export async function inBatches<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await task(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
