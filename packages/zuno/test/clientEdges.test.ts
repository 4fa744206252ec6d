/**
 * Attacks on the client's promises, each against a real server (and a real proxy in front of it).
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type EventSourceLike, type ZunoError } from '../src/index'
import { createMemoryStorage } from '../src/server/index'
import { startProxy, startZuno } from './support/zunoBehindProxy'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('an op in doubt whose update throws on the state the stream brings back', () => {
  it('is re-sent unchanged, not refused as update_failed with its id freed for the next op', async () => {
    // Only the last event is kept: a stream that resumes from before the op gets a snapshot.
    const zuno = await startZuno({ universe: { retention: 1 } })
    cleanups.push(() => zuno.close())
    let streamDown = false
    const streams: Socket[] = []
    let proposals = 0
    const proxy = await startProxy(zuno, (req: IncomingMessage) => {
      if (req.method === 'GET') {
        if (streamDown) return { status: 0 }
        streams.push(req.socket)
        return undefined
      }
      proposals += 1
      if (proposals !== 1) return undefined
      // The first attempt is applied, but its answer is lost, and so is the stream (with the op's echo).
      streamDown = true
      for (const socket of streams.splice(0)) socket.destroy()
      return { status: 0, afterForwarding: true }
    })
    cleanups.push(proxy.close)
    const replica = connect({ url: proxy.url, EventSource })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const counter = replica.store<number>('counter', 0)
    // Runs on 0; would throw on the state another writer makes meanwhile.
    const doubted = counter.set((n) => {
      if (n >= 100) throw new Error('too late')
      return n + 1
    })
    const outcome = doubted.then(
      (version) => ({ version }),
      (error: ZunoError) => ({ code: error.code }),
    )
    await until(() => zuno.universe.store('counter').version === 1)
    await until(() => replica.status.get() !== 'connected')
    const next = counter.set(500).catch((error: ZunoError) => error)
    // Another writer moves the store while this replica cannot see it; the log forgets the op's event.
    await zuno.universe.store<number>('counter').set(100)
    await zuno.universe.store<number>('counter').set(101)
    streamDown = false
    const settled = await outcome
    // The op was applied (version 1): re-sent unchanged it is recognised; it is never refused as a failed update.
    expect(settled).toEqual({ version: 1 })
    // And the next op is not sent under the doubted op's id.
    expect(await next).toBe(4)
    expect(zuno.universe.store('counter').get()).toBe(500)
  }, 15_000)
})

describe('a state that cannot be sent as JSON', () => {
  it('refuses its op at once, and the ops after it go', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const replica = connect({ url: zuno.url, EventSource })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const store = replica.store<unknown>('counter', 0)
    const unsendable = store.set({ count: 1n }).catch((error: ZunoError) => error)
    const next = store.set(2)
    const refused = await Promise.race([unsendable, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 3000))])
    expect((refused as ZunoError).code).toBe('invalid_state')
    expect(await next).toBe(1)
    expect(zuno.universe.store('counter').get()).toBe(2)
    expect(replica.pending.get()).toBe(0)
  })
})

describe('a burst of set() calls while the server cannot be reached', () => {
  it('reconnects at once for the first op, then keeps the short backoff: not one stream request per set()', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    let down = false
    let streamRequests = 0
    const streams: Socket[] = []
    // The proxy drops every connection while `down`: the stream is lost, not refused.
    const proxy = await startProxy(zuno, (req: IncomingMessage) => {
      if (req.method === 'GET') {
        streamRequests += 1
        if (!down) streams.push(req.socket)
      }
      return down ? { status: 0 } : undefined
    })
    cleanups.push(proxy.close)
    const replica = connect({ url: proxy.url, EventSource })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    down = true
    for (const socket of streams.splice(0)) socket.destroy()
    await until(() => replica.status.get() === 'offline')
    const counter = replica.store<number>('counter', 0)
    const before = streamRequests
    const first = counter.set(0)
    // The first op cuts the (possibly 10-second) pause short.
    await until(() => streamRequests > before, 500)
    // A user typing: 100 keystrokes in about a second, each a set().
    const typed: Array<Promise<number>> = []
    for (let i = 1; i <= 100; i += 1) {
      typed.push(counter.set(i))
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    // Pauses of up to a second while ops wait: a handful of attempts, not a hundred.
    expect(streamRequests - before).toBeLessThan(10)
    down = false
    await first
    expect(await typed[99]).toBe(101)
    expect(zuno.universe.store('counter').get()).toBe(100)
  }, 15_000)
})

describe('a first op in doubt whose client the server has since forgotten', () => {
  it('is never applied twice: a 409 to its resend does not prove it was not applied', async () => {
    let now = 1_000_000
    const zuno = await startZuno({ universe: { storage: createMemoryStorage({ clientLifetimeMs: 1000, now: () => now }) } })
    cleanups.push(() => zuno.close())
    let proposals = 0
    const proxy = await startProxy(zuno, (req: IncomingMessage) => {
      if (req.method !== 'POST') return undefined
      proposals += 1
      // The first attempt is applied, but its answer is lost.
      return proposals === 1 ? { status: 0, afterForwarding: true } : undefined
    })
    cleanups.push(proxy.close)
    // Following another store, so the stream's echo of the applied op does not settle it first.
    const replica = connect({ url: proxy.url, EventSource, stores: ['elsewhere'] })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const outcome = replica
      .store<number>('counter', 0)
      .set((n) => n + 1)
      .then(
        (version) => ({ version }),
        (error: ZunoError) => ({ code: error.code }),
      )
    await until(() => zuno.universe.store('counter').version === 1)
    // Before the retry: the client's record outlives its lifetime, and another writer moves the store.
    now += 5000
    await zuno.universe.store<number>('counter').set(10)
    const settled = await outcome
    const applied = zuno.universe.store('counter').get()
    // Either it is known to be applied once, or it says its outcome is unknown: never a second increment.
    expect(applied).toBe(10)
    expect(settled).toEqual({ code: 'outcome_unknown' })
  }, 15_000)
})

/** A browser's EventSource: its error event says nothing of the status, so the client reads the answer with fetch. */
class BrowserEventSource implements EventSourceLike {
  readonly #inner: EventSource
  onopen: ((event: Event) => unknown) | null = null
  onerror: ((event: Event) => unknown) | null = null
  constructor(url: string, init?: { withCredentials?: boolean }) {
    this.#inner = new EventSource(url, init)
    this.#inner.onopen = (event) => this.onopen?.(event)
    this.#inner.onerror = () => this.onerror?.(new Event('error'))
  }
  get readyState(): number {
    return this.#inner.readyState
  }
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void {
    this.#inner.addEventListener(type, listener)
  }
  close(): void {
    this.#inner.close()
  }
}

describe('a stream turned away with 503 and Retry-After while ops wait', () => {
  it('comes back when the server said, not every second', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    let busy = false
    let turnedAway = 0
    // A crowd is turned away: the server (or its proxy) answers the stream 503, come back in 3 s.
    const proxy = await startProxy(zuno, (req: IncomingMessage) => {
      if (req.method !== 'GET' || !busy) return undefined
      turnedAway += 1
      return { status: 503, body: '{"ok":false,"error":"too_many_streams","message":"Too many open streams"}', contentType: 'application/json', headers: { 'retry-after': '3' } }
    })
    cleanups.push(proxy.close)
    const replica = connect({ url: proxy.url, EventSource: BrowserEventSource })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    busy = true
    const waiting = replica.store<number>('counter', 0).set(1)
    // The stream drops (the server restarts behind the proxy) and meets the 503 when it comes back.
    await zuno.close(false)
    await until(() => replica.lastError.get()?.code === 'too_many_streams', 5000)
    const after = turnedAway
    await new Promise((resolve) => setTimeout(resolve, 2000))
    // Within the 3 seconds asked for, no new attempt (each attempt is the stream and the read of its answer).
    expect(turnedAway - after).toBe(0)
    void waiting.catch(() => {})
  }, 15_000)
})
