import { describe, expect, it } from 'vitest'
import { writerTag } from '../../src/writerTag'
import type { CommittedEvent } from '../../src/server/index'
import {
  checkAcknowledged,
  checkContiguous,
  checkConverged,
  checkExactlyOnce,
  checkLinearizable,
  checkRefusedByProxy,
  type StoreView,
} from './checkers'
import { SimBrowser } from './simBrowser'
import type { Attempt } from './simNetwork'
import { VirtualClock } from './virtualClock'

const write = (seq: number, version: number, clientId: string, opId: number, state: unknown): CommittedEvent => ({
  storeKey: 's',
  version,
  state,
  writer: writerTag(clientId),
  opId,
  seq,
  id: `e-${seq}`,
})
const attempt = (fields: Partial<Attempt>): Attempt => ({
  clientId: 'a',
  epoch: 'e',
  storeKey: 's',
  opId: 1,
  baseVersion: 0,
  state: 1,
  invokedAt: 0,
  ...fields,
})

describe('simulation checkers catch what they claim to', () => {
  const good = [write(1, 1, 'a', 1, 1), write(2, 2, 'b', 1, 2)]

  it('pass a correct history', () => {
    const attempts = [
      attempt({ clientId: 'a', opId: 1, invokedAt: 0, respondedAt: 5, status: 200, answer: { version: 1, state: 1 } }),
      attempt({ clientId: 'b', opId: 1, baseVersion: 1, state: 2, invokedAt: 6, respondedAt: 9, status: 200, answer: { version: 2, state: 2 } }),
    ]
    expect([...checkContiguous(good), ...checkExactlyOnce(good), ...checkLinearizable(attempts, good, { s: 0 })]).toEqual([])
  })

  it('catch a gap in versions and a double application', () => {
    expect(checkContiguous([write(1, 1, 'a', 1, 1), write(2, 3, 'b', 1, 2)])).toHaveLength(1)
    expect(checkExactlyOnce([write(1, 1, 'a', 1, 1), write(2, 2, 'a', 1, 1)])).toHaveLength(1)
  })

  it('catch a lost acknowledged write and an applied rejected one', () => {
    const writers = new Map(['a', 'b', 'c'].map((name) => [name, new Set([writerTag(name)])]))
    const fine = [
      { replica: 'a', storeKey: 's', outcome: 'resolved' as const, version: 1 },
      { replica: 'b', storeKey: 's', outcome: 'resolved' as const, version: 2 },
    ]
    expect(checkAcknowledged(fine, new Map([['e', good]]), writers)).toEqual([])
    // Acknowledged, but the log has no such write (or another replica's).
    expect(checkAcknowledged([...fine, { replica: 'c', storeKey: 's', outcome: 'resolved', version: 3 }], new Map([['e', good]]), writers)).toHaveLength(2)
    expect(checkAcknowledged([{ replica: 'c', storeKey: 's', outcome: 'resolved', version: 2 }], new Map([['e', good]]), writers).length).toBeGreaterThan(0)
    // Rejected, yet applied.
    expect(checkAcknowledged([fine[0] as (typeof fine)[0], { replica: 'b', storeKey: 's', outcome: 'rejected' }], new Map([['e', good]]), writers)).toHaveLength(1)
    // Of unknown outcome: applied or not, both fine.
    expect(checkAcknowledged([fine[0] as (typeof fine)[0], { replica: 'b', storeKey: 's', outcome: 'rejected', error: 'outcome_unknown' }], new Map([['e', good]]), writers)).toEqual([])
    expect(checkAcknowledged([{ replica: 'b', storeKey: 's', outcome: 'pending' }], new Map([['e', good]]), writers).length).toBeGreaterThan(0)
  })

  it('catch a write ordered against real time', () => {
    // b's write was acknowledged (as v2) before a's was even sent, yet a's got the higher version.
    const history = [write(1, 1, 'b', 1, 1), write(2, 2, 'a', 1, 2)]
    const attempts = [
      attempt({ clientId: 'b', opId: 1, invokedAt: 0, respondedAt: 2, status: 200, answer: { version: 1, state: 1 } }),
      attempt({ clientId: 'a', opId: 1, baseVersion: 1, invokedAt: 3, respondedAt: 4, status: 200, answer: { version: 2, state: 2 } }),
    ]
    expect(checkLinearizable(attempts, history, { s: 0 })).toEqual([])
    const swapped = [write(1, 1, 'a', 1, 1), write(2, 2, 'b', 1, 2)]
    const late = [
      attempt({ clientId: 'b', opId: 1, invokedAt: 0, respondedAt: 2, status: 200, answer: { version: 2, state: 2 } }),
      attempt({ clientId: 'a', opId: 1, invokedAt: 3, respondedAt: 4, status: 200, answer: { version: 1, state: 1 } }),
    ]
    expect(checkLinearizable(late, swapped, { s: 0 }).length).toBeGreaterThan(0)
  })

  it('catch a stale or invented conflict answer', () => {
    const stale = attempt({ clientId: 'c', opId: 1, invokedAt: 20, respondedAt: 21, status: 409, answer: { version: 1, state: 1 } })
    const acks = [
      attempt({ clientId: 'a', opId: 1, invokedAt: 0, respondedAt: 5, status: 200, answer: { version: 1, state: 1 } }),
      attempt({ clientId: 'b', opId: 1, baseVersion: 1, invokedAt: 6, respondedAt: 9, status: 200, answer: { version: 2, state: 2 } }),
    ]
    expect(checkLinearizable([...acks, stale], good, { s: 0 })).toHaveLength(1)
    const invented = attempt({ clientId: 'c', opId: 1, invokedAt: 20, respondedAt: 21, status: 409, answer: { version: 2, state: 99 } })
    expect(checkLinearizable([...acks, invented], good, { s: 0 })).toHaveLength(1)
  })

  it('allow one write of a closed tab beyond its acknowledged ops, and no more', () => {
    const writers = new Map(['a', 'b'].map((name) => [name, new Set([writerTag(name)])]))
    const acknowledged = { replica: 'a', storeKey: 's', outcome: 'resolved' as const, version: 1 }
    const closed = { replica: 'b', storeKey: 's', outcome: 'rejected' as const, error: 'closed' }
    // b closed with its op on the wire, and the server took it: fine.
    expect(checkAcknowledged([acknowledged, closed, closed], new Map([['e', good]]), writers)).toEqual([])
    // Two writes of b in the log, though b closed with only one op possibly sent.
    const twoOfB = [...good, write(3, 3, 'b', 2, 3)]
    expect(checkAcknowledged([acknowledged, closed, closed], new Map([['e', twoOfB]]), writers)).toHaveLength(1)
  })

  it('catch an HTML 413 that did not refuse its op as http_413', () => {
    const writers = new Map([['a', new Set([writerTag('a')])]])
    const refused = attempt({ clientId: 'a', opId: 1, status: 413, proxy: 'too_large' })
    const rejected = { replica: 'a', storeKey: 's', outcome: 'rejected' as const, error: 'http_413' }
    expect(checkRefusedByProxy([rejected], [refused], writers)).toEqual([])
    // The op was retried and resolved instead; or refused without a 413.
    expect(checkRefusedByProxy([{ replica: 'a', storeKey: 's', outcome: 'resolved', version: 1 }], [refused], writers)).toHaveLength(1)
    expect(checkRefusedByProxy([rejected], [], writers)).toHaveLength(1)
  })

  it('catch a replica that shows anything but the server, store by store', () => {
    const view = (version: number, state: unknown): StoreView => ({ version, get: () => state })
    const server = (key: string) => (key === 'n' ? view(2, 20) : view(0, 'initial'))
    const replica = (n: StoreView, pending = 0) => ({ store: (key: string) => (key === 'n' ? n : view(0, 'mine')), pending: { get: () => pending } })
    expect(checkConverged(server, new Map([['r', replica(view(2, 20))]]), ['n', 'never'])).toEqual([])
    // Its own unconfirmed state (what it sent before the schema rounded it), a version behind, ops left.
    expect(checkConverged(server, new Map([['r', replica(view(2, 17))]]), ['n'])).toHaveLength(1)
    expect(checkConverged(server, new Map([['r', replica(view(1, 20))]]), ['n'])).toHaveLength(1)
    expect(checkConverged(server, new Map([['r', replica(view(2, 20), 1)]]), ['n'])).toHaveLength(1)
  })
})

describe('the simulated browser behaves as tabs see a browser', () => {
  it('delivers to every other open channel of a name, in order per sender, never to the sender', async () => {
    const clock = new VirtualClock()
    let latency = 30
    const browser = new SimBrowser(clock, () => (latency = latency === 30 ? 1 : 30))
    const Channel = browser.channelFor()
    const [a, b, c, other] = [new Channel('x'), new Channel('x'), new Channel('x'), new Channel('y')]
    const got = new Map<string, unknown[]>()
    for (const [name, channel] of Object.entries({ a, b, c, other })) {
      got.set(name, [])
      channel.onmessage = (event) => got.get(name)?.push(event.data)
    }
    a.postMessage(1)
    a.postMessage(2)
    c.close()
    await clock.run()
    expect(Object.fromEntries(got)).toEqual({ a: [], b: [1, 2], c: [], other: [] })
  })

  it('grants an exclusive lock in request order; an aborted waiter leaves the line; ifAvailable does not wait', async () => {
    const clock = new VirtualClock()
    const browser = new SimBrowser(clock, () => 1)
    const order: string[] = []
    const releases: Array<() => void> = []
    const hold = (tab: string, signal?: AbortSignal) =>
      browser.locksFor(tab).request('L', signal ? { signal } : {}, () => {
        order.push(tab)
        return new Promise<void>((resolve) => releases.push(resolve))
      })
    void hold('one')
    const abort = new AbortController()
    const aborted = hold('two', abort.signal).catch(() => 'aborted')
    void hold('three')
    const tried = browser.locksFor('four').request('L', { ifAvailable: true }, async (lock) => lock)
    await clock.run()
    expect(browser.holder('L')).toBe('one')
    expect(await tried).toBeNull()
    abort.abort()
    expect(await aborted).toBe('aborted')
    releases[0]?.()
    await clock.run()
    expect(order).toEqual(['one', 'three'])
    expect(browser.holder('L')).toBe('three')
  })
})
