/**
 * Tabs with a leader (Web Locks) against a real server: one tab's credential hold is its own. The
 * browser's BroadcastChannel and Web Locks are the simulation's, run on the real clock.
 */
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type ReplicaUniverse } from '../src/index'
import { SimBrowser } from './simulation/simBrowser'
import type { VirtualClock } from './simulation/virtualClock'
import { until } from './support/until'
import { htmlPage, startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** The real clock, as much of it as the simulated browser uses. */
const realClock = { get now() { return Date.now() }, setTimeout: (run: () => void, ms: number) => setTimeout(run, ms) } as unknown as VirtualClock

describe('a leader tab held by a 401 on its own proposal', () => {
  it('greets a new tab with its stream status, not its hold: the other tabs keep proposing', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const browser = new SimBrowser(realClock, () => 1)
    let leaderProposals = 0
    // The leader's first proposal meets a proxy's 401 (an expired session); later ones pass.
    const leaderFetch: typeof fetch = (input, init) =>
      init?.method === 'POST' && ++leaderProposals === 1
        ? Promise.resolve(new Response(htmlPage(401, 'Authorization Required'), { status: 401, headers: { 'content-type': 'text/html' } }))
        : fetch(input, init)
    const tab = (name: string, extra: { fetch?: typeof fetch } = {}): ReplicaUniverse => {
      const replica = connect({ url: zuno.url, EventSource, tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name), ...extra })
      cleanups.push(() => replica.close())
      return replica
    }
    const a = tab('a', { fetch: leaderFetch })
    await until(() => a.status.get() === 'connected')
    const b = tab('b')
    await until(() => b.status.get() === 'connected')
    const held = a.store<number>('counter', 0).set(1)
    await until(() => a.status.get() === 'unauthorized')
    const c = tab('c') // opens while the leader is held: the leader greets it
    await until(() => c.status.get() === 'connected')
    // The followers were not refused anything: they stay connected and their ops go.
    expect(b.status.get()).toBe('connected')
    expect(await b.store<number>('b', 0).set(7)).toBe(1)
    expect(await c.store<number>('c', 0).set(9)).toBe(1)
    a.retry()
    expect(await held).toBe(1)
  })
})

describe('a follower tab whose ops wait for the leader’s lost stream', () => {
  it('gets the leader to reconnect at once, and to keep its pauses short while the ops wait', async () => {
    const first = await startZuno()
    const port = first.port
    let zuno = first
    cleanups.push(() => zuno.close())
    const browser = new SimBrowser(realClock, () => 1)
    // The leader's pauses over a second last a minute: only a hurried leader reconnects in time.
    const pauses: number[] = []
    const stretched = {
      setTimeout: (callback: () => void, ms: number) => {
        pauses.push(ms)
        return setTimeout(callback, ms > 1000 ? 60_000 : ms)
      },
      clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    }
    // And its clock runs ten times fast, so a follower's word that ops wait (good for 15 s) must be renewed within the test.
    const base = Date.now()
    const fastClock = () => base + (Date.now() - base) * 10
    const tab = (name: string, extra: { timers?: typeof stretched; now?: () => number } = {}): ReplicaUniverse => {
      const replica = connect({ url: zuno.url, EventSource, tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name), ...extra })
      cleanups.push(() => replica.close())
      return replica
    }
    const leader = tab('leader', { timers: stretched, now: fastClock })
    await until(() => leader.status.get() === 'connected')
    const follower = tab('follower')
    await until(() => follower.status.get() === 'connected')

    await first.close()
    // The leader backs off until it waits out a long pause.
    await until(() => pauses.some((ms) => ms > 1000), 15_000)
    await until(() => follower.status.get() === 'offline')
    zuno = await startZuno({ port })
    const started = Date.now()
    // The follower's op makes the leader try now; the stream comes back and the op goes.
    expect(await follower.store<number>('counter', 0).set(5)).toBe(1)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(zuno.universe.store('counter').get()).toBe(5)

    // Down again, with an op waiting in the follower: every pause of the leader stays short.
    await zuno.close()
    await until(() => follower.status.get() === 'offline')
    const from = pauses.length
    const waiting = follower.store<number>('counter', 0).set(6)
    await new Promise((resolve) => setTimeout(resolve, 3500))
    const whileWaiting = pauses.slice(from)
    expect(whileWaiting.length).toBeGreaterThan(2)
    expect(Math.max(...whileWaiting)).toBeLessThanOrEqual(1000)
    zuno = await startZuno({ port })
    expect(await waiting).toBe(1) // a new server: a new epoch, where this is the first write
    expect(zuno.universe.store('counter').get()).toBe(6)
  }, 30_000)
})
