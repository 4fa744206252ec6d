/**
 * `replica.follow(key)` against a real server on 127.0.0.1 with the real `eventsource` client:
 * documents opened one after another on one stream, released after a grace period, a follow the
 * server never heard of repaired by the reconnect, a revoked store, and tabs that follow through
 * their leader's stream.
 */
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type ReplicaOptions, type ReplicaUniverse } from '../src/index'
import type { Principal } from '../src/server/index'
import { SimBrowser } from './simulation/simBrowser'
import type { VirtualClock } from './simulation/virtualClock'
import { until } from './support/until'
import { startProxy, startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const realClock = { get now() { return Date.now() }, setTimeout: (run: () => void, ms: number) => setTimeout(run, ms) } as unknown as VirtualClock

function replicaOf(url: string, options: Partial<ReplicaOptions> = {}): ReplicaUniverse {
  const replica = connect({ url, EventSource, stores: [], ...options })
  cleanups.push(() => replica.close())
  return replica
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('replica.follow', () => {
  it('opens twenty documents one after another over one stream, and lets each go after the grace period', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    for (let i = 0; i < 20; i++) await zuno.universe.store(`doc:${i}`, { n: 0 }).set({ n: i })
    const replica = replicaOf(zuno.url, { followGraceMs: 100 })
    await until(() => replica.status.get() === 'connected')
    const releases: Array<() => void> = []
    for (let i = 0; i < 20; i++) {
      releases.push(replica.follow(`doc:${i}`))
      await until(() => (replica.store(`doc:${i}`).get() as { n: number } | undefined)?.n === i)
    }
    // Changes of every document arrive, on the one stream.
    await zuno.universe.store('doc:3').set({ n: 33 })
    await until(() => (replica.store('doc:3').get() as { n: number }).n === 33)
    expect(zuno.seen.filter((seen) => seen.path === '/zuno/sse')).toHaveLength(1)
    expect(zuno.seen.filter((seen) => seen.path === '/zuno/subscribe').length).toBeGreaterThanOrEqual(1)

    // Released: still followed within the grace period, not after it.
    releases[3]?.()
    await zuno.universe.store('doc:3').set({ n: 34 })
    await until(() => (replica.store('doc:3').get() as { n: number }).n === 34)
    await sleep(250)
    await zuno.universe.store('doc:3').set({ n: 35 })
    await zuno.universe.store('doc:4').set({ n: 44 })
    await until(() => (replica.store('doc:4').get() as { n: number }).n === 44)
    expect((replica.store('doc:3').get() as { n: number }).n).toBe(34)
  })

  it('counts the calls for one store: it stays followed until the last is released', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const replica = replicaOf(zuno.url, { followGraceMs: 0 })
    const first = replica.follow('doc')
    const second = replica.follow('doc')
    await zuno.universe.store('doc', 0).set(1)
    await until(() => replica.store('doc').get() === 1)
    first()
    first() // a second call of one release is no second release
    await sleep(50)
    await zuno.universe.store('doc').set(2)
    await until(() => replica.store('doc').get() === 2)
    second()
    await sleep(50)
    await zuno.universe.store('doc').set(3)
    await zuno.universe.store('counter').set(9)
    replica.follow('counter')
    await until(() => replica.store('counter').get() === 9)
    expect(replica.store('doc').get()).toBe(2)
  })

  it('repairs a follow the server never heard of with the next connection, which names it', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('doc', 'before').set('there')
    // A proxy that loses every POST /subscribe (a 502): the client then reconnects, naming the store.
    const proxy = await startProxy({ port: zuno.port }, (req) => (req.url?.includes('/subscribe') ? { status: 502, body: 'Bad Gateway' } : undefined))
    cleanups.push(() => proxy.close())
    const replica = replicaOf(proxy.url)
    await until(() => replica.status.get() === 'connected')
    replica.follow('doc')
    await until(() => replica.store('doc').get() === 'there')
    const streams = zuno.seen.filter((seen) => seen.path === '/zuno/sse')
    expect(streams).toHaveLength(2)
    expect(streams[1]?.url).toContain('follow=doc')
    expect(streams[1]?.url).toContain('versions=-')
  })

  it('stops showing a revoked store’s changes, says so in lastError, and keeps following the others', async () => {
    const members = new Set(['ada'])
    const zuno = await startZuno({
      handler: {
        authenticate: () => ({ id: 'ada' }),
        authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => storeKey !== 'room' || members.has(principal?.id ?? ''),
      },
    })
    cleanups.push(() => zuno.close())
    const replica = replicaOf(zuno.url)
    replica.follow('room')
    replica.follow('counter')
    await zuno.universe.store('room', 0).set(1)
    await until(() => replica.store('room').get() === 1)
    members.delete('ada')
    await zuno.universe.revalidate('ada')
    await until(() => replica.lastError.get()?.code === 'forbidden')
    await zuno.universe.store('room').set(2)
    await zuno.universe.store('counter').set(5)
    await until(() => replica.store('counter').get() === 5)
    expect(replica.store('room').get()).toBe(1)
    expect(replica.status.get()).toBe('connected')
  })
})

describe('tabs that follow stores', () => {
  it('follow through the leader’s one stream, and the leader stops when the tab lets go', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('doc', 0).set(1)
    const browser = new SimBrowser(realClock, () => 1)
    const tab = (name: string) => replicaOf(zuno.url, { tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name), followGraceMs: 0 })
    const leader = tab('leader')
    await until(() => leader.status.get() === 'connected')
    const follower = tab('follower')
    await until(() => follower.status.get() === 'connected')
    const release = follower.follow('doc')
    await until(() => follower.store('doc').get() === 1)
    await zuno.universe.store('doc').set(2)
    await until(() => follower.store('doc').get() === 2)
    expect(zuno.seen.filter((seen) => seen.path === '/zuno/sse')).toHaveLength(1)
    release()
    await sleep(100)
    await zuno.universe.store('doc').set(3)
    await zuno.universe.store('counter').set(4)
    leader.follow('counter')
    await until(() => follower.store('counter').get() === 4)
    expect(follower.store('doc').get()).toBe(2)
  })

  it('a new leader follows what the other tabs follow', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const browser = new SimBrowser(realClock, () => 1)
    const tab = (name: string) => replicaOf(zuno.url, { tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name) })
    const first = tab('first')
    await until(() => first.status.get() === 'connected')
    const second = tab('second')
    const third = tab('third')
    await until(() => second.status.get() === 'connected' && third.status.get() === 'connected')
    third.follow('doc')
    await zuno.universe.store('doc', 0).set(1)
    await until(() => third.store('doc').get() === 1)
    // The leader goes; the second tab leads, with a stream of its own that must follow the third's store.
    first.close()
    await until(() => zuno.seen.filter((seen) => seen.path === '/zuno/sse').length === 2)
    await zuno.universe.store('doc').set(2)
    await until(() => third.store('doc').get() === 2)
  })
})
