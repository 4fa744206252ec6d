import type { Timers } from '../../src/index'
import type { DigestLike } from '../../src/client/writerTags'
import { sha256 } from '../../src/sha256'

interface Task {
  time: number
  seq: number
  run: () => void
  cancelled: boolean
}

/** A seeded PRNG (mulberry32): the same seed gives the same run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** Client ids in the shape `newClientId` makes (see `CLIENT_ID_PATTERN`), drawn from a seeded PRNG. */
export function seededClientIds(random: () => number): () => string {
  const chars = (length: number) => Array.from({ length }, () => BASE64URL[Math.floor(random() * 64)]).join('')
  return () => `${chars(16)}.${chars(22)}`
}

/**
 * SHA-256 for the replicas' writer tags, settled in microtasks: WebCrypto's digest finishes on
 * another thread at a moment of its own, which a run that must replay exactly cannot have.
 */
export const microtaskDigest: DigestLike = {
  digest: async (_algorithm, data) => {
    const digest = sha256(new Uint8Array(data))
    return digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.byteLength) as ArrayBuffer
  },
}

/** Lets every pending promise continuation run before the next virtual event. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Virtual time: tasks run in (time, insertion) order, and between two tasks every microtask
 * settles. Nothing waits for real time, so a run is fast and, for a given seed, always the same.
 */
export class VirtualClock implements Timers {
  now = 0
  #seq = 0
  readonly #heap: Task[] = []

  setTimeout(callback: () => void, ms: number): Task {
    const task: Task = { time: this.now + Math.max(0, ms), seq: this.#seq++, run: callback, cancelled: false }
    this.#push(task)
    return task
  }

  clearTimeout(handle: unknown): void {
    if (handle) (handle as Task).cancelled = true
  }

  /** Runs tasks until none is left, or until `until()` holds. Returns the number run. */
  async run(until: () => boolean = () => false, maxTasks = 5_000_000): Promise<number> {
    let count = 0
    await settle()
    while (!until()) {
      const task = this.#pop()
      if (task === undefined) break
      if (task.cancelled) continue
      this.now = Math.max(this.now, task.time)
      task.run()
      await settle()
      if (++count > maxTasks) throw new Error('simulation did not quiesce')
    }
    return count
  }

  #push(task: Task): void {
    const heap = this.#heap
    heap.push(task)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i] as Task, heap[parent] as Task)) break
      ;[heap[i], heap[parent]] = [heap[parent] as Task, heap[i] as Task]
      i = parent
    }
  }

  #pop(): Task | undefined {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop()
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let smallest = i
        if (left < heap.length && before(heap[left] as Task, heap[smallest] as Task)) smallest = left
        if (right < heap.length && before(heap[right] as Task, heap[smallest] as Task)) smallest = right
        if (smallest === i) break
        ;[heap[i], heap[smallest]] = [heap[smallest] as Task, heap[i] as Task]
        i = smallest
      }
    }
    return top
  }
}

function before(a: Task, b: Task): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq)
}
