import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type Timers } from '../src/index'
import { createFileStorage, type FileStorage } from '../src/file/index'
import { freshDir, removeDirs } from './support/fileUniverse'
import { startZuno } from './support/zunoBehindProxy'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeDirs()
})

/** One pause the replica asked for: how long (as asked), and what became of it. */
interface Pause {
  ms: number
  outcome: 'pending' | 'fired' | 'cleared'
}

/**
 * Real timers on a clock twenty times faster, that keep the schedule the replica asked for: the
 * test asserts on the pauses (how long, cut short or waited out), never on the wall clock.
 */
function recordingTimers() {
  const pauses: Pause[] = []
  const timers: Timers = {
    setTimeout(callback, ms) {
      const pause: Pause = { ms, outcome: 'pending' }
      pauses.push(pause)
      const handle = setTimeout(() => {
        pause.outcome = 'fired'
        callback()
      }, ms / 20)
      return { handle, pause }
    },
    clearTimeout(entry) {
      const { handle, pause } = entry as { handle: ReturnType<typeof setTimeout>; pause: Pause }
      clearTimeout(handle)
      if (pause.outcome === 'pending') pause.outcome = 'cleared'
    },
  }
  return { timers, pauses }
}

/** A real server on a file storage in `dir`, on `port` (0: any); stopping it closes the storage, so it can start again on it. */
async function serveFolder(dir: string, port = 0) {
  const storage: FileStorage = createFileStorage({ dir })
  const zuno = await startZuno({ port, universe: { storage } })
  const stop = async () => {
    await zuno.close()
    await storage.close()
  }
  return { ...zuno, stop }
}

describe('recovery after an outage', () => {
  it('sends ops queued in an outage right after the stream is back, without waiting out a long pause', async () => {
    const dir = freshDir()
    let server = await serveFolder(dir)
    const { port } = server
    const { timers, pauses } = recordingTimers()
    const replica = connect({ url: server.url, EventSource, timers, random: () => 0.5 })
    cleanups.push(() => replica.close())
    let lost = 0
    replica.status.subscribe((status) => {
      if (status === 'offline' || status === 'error') lost += 1
    })
    const counter = replica.store<number>('counter', 0)
    await until(() => replica.status.get() === 'connected')
    expect(await counter.set(1)).toBe(1)

    await server.stop()
    // An idle replica backs off: by its sixth failed reconnect it pauses 6 s (half of the 8 s ceiling, with random 0.5).
    await until(() => lost >= 6)
    const longPause = pauses.at(-1) as Pause
    expect([longPause.ms, longPause.outcome]).toEqual([6000, 'pending'])

    // Someone writes: the long pause is cut short, and while ops wait no pause is longer than a second.
    const queuedAt = pauses.length
    const sets = [counter.set((n) => n + 1), counter.set((n) => n + 1)]
    expect(longPause.outcome).toBe('cleared')
    await until(() => lost >= 9)
    const whileWaiting = pauses.slice(queuedAt)
    expect(whileWaiting.length).toBeGreaterThan(0)
    expect(Math.max(...whileWaiting.map((pause) => pause.ms))).toBeLessThanOrEqual(1000)

    server = await serveFolder(dir, port)
    cleanups.push(server.stop)
    expect(await Promise.all(sets)).toEqual([2, 3])
    // The restarted server saw the stream come back, then each op once, in order: no failed attempt between.
    expect(server.seen.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /zuno/sse',
      'POST /zuno/sync',
      'POST /zuno/sync',
    ])
    expect(server.universe.store('counter').get()).toBe(3)
  })
})
