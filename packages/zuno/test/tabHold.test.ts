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
