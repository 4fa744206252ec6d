/**
 * The commands every fan-out server obeys, so Zuno and its baselines are driven identically:
 * `emit` runs the one writer, `mem` reports memory after a full collection.
 */
import { monotonicMs, onCommand, report } from '../harness/channel'

/** Publishes event number `seq`, stamped with the time it was made (`t`, monotonic ms). */
export type Emit = (seq: number, t: number) => void | Promise<unknown>

/**
 * Listens for commands. `emit` publishes `count` events from `first`, `intervalMs` apart, or
 * back to back (yielding to I/O between events) when it is 0.
 */
export function serveCommands(emit: Emit): void {
  onCommand(async (command) => {
    if (command.type === 'emit') {
      const first = command.first as number
      const count = command.count as number
      const intervalMs = command.intervalMs as number
      const started = monotonicMs()
      for (let seq = first; seq < first + count; seq++) {
        await emit(seq, monotonicMs())
        await (intervalMs > 0 ? sleep(intervalMs) : yieldToIo())
      }
      report({ type: 'emitted', started, ended: monotonicMs() })
    } else if (command.type === 'mem') {
      const gc = (globalThis as { gc?: () => void }).gc
      for (let i = 0; i < 3; i++) {
        gc?.()
        await sleep(50)
      }
      const usage = process.memoryUsage()
      report({ type: 'mem', rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: usage.arrayBuffers })
    }
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
