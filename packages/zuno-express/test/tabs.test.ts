import { BroadcastChannel as NodeBroadcastChannel } from 'node:worker_threads'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { type BroadcastChannelConstructor, connect, type ReplicaOptions, type ReplicaUniverse, type StateResponse } from 'zuno'
import { createUniverse } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { serveExpress } from './serveExpress'

// Tabs in Node: Node's own BroadcastChannel and no Web Locks, which is the fallback path (every
// tab holds its stream). Leader election with real Web Locks runs in Chromium (examples/react-demo).

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve() {
  const served = await serveExpress(createUniverse({ stores: { counter: 0 } }))
  cleanups.push(served.close)
  return served
}

function tab(url: string, options: Partial<ReplicaOptions> = {}): ReplicaUniverse {
  const universe = connect({
    url,
    EventSource,
    tabs: true,
    BroadcastChannel: NodeBroadcastChannel as unknown as BroadcastChannelConstructor,
    ...options,
  })
  cleanups.push(() => universe.close())
  return universe
}

const offline: typeof fetch = () => Promise.reject(new TypeError('offline'))

describe('tabs without Web Locks', () => {
  it('show each other their pending ops at once, then the confirmed state', async () => {
    const { url } = await serve()
    let online = false
    const a = tab(url, { fetch: (input, init) => (online ? fetch(input, init) : offline(input, init)) })
    const b = tab(url)
    await until(() => a.status.get() === 'connected' && b.status.get() === 'connected')
    const counterB = b.store<number>('counter', 0)
    void a.store<number>('counter', 0).set((n) => n + 1)
    await until(() => counterB.get() === 1) // A's op, still pending, shows in B
    expect(counterB.version).toBe(0)
    online = true
    await until(() => counterB.version === 1 && counterB.get() === 1)
  })

  it('show the state the server made of a tab’s op, in that tab and its siblings, not the one it sent', async () => {
    const trimmed = {
      '~standard': {
        version: 1 as const,
        vendor: 'test',
        validate: (value: unknown) => (typeof value === 'string' ? { value: value.trim().toUpperCase() } : { issues: [{ message: 'a string' }] }),
      },
    }
    const served = await serveExpress(createUniverse({ stores: { name: '' }, schemas: { name: trimmed } }))
    cleanups.push(served.close)
    let online = false
    const a = tab(served.url, { fetch: (input, init) => (online ? fetch(input, init) : offline(input, init)) })
    const b = tab(served.url)
    await until(() => a.status.get() === 'connected' && b.status.get() === 'connected')
    const nameA = a.store<string>('name', '')
    const nameB = b.store<string>('name', '')
    const written = nameA.set('  bob ')
    await until(() => nameB.get() === '  bob ') // pending in A, shown in B
    online = true
    expect(await written).toBe(1)
    await until(() => nameB.version === 1)
    expect([nameA.get(), nameB.get(), served.universe.store('name').get()]).toEqual(['BOB', 'BOB', 'BOB'])
  })

  it('keep two principals apart', async () => {
    const { url } = await serve()
    const alice = tab(url, { principal: 'alice', fetch: offline })
    const bob = tab(url, { principal: 'bob' })
    const alice2 = tab(url, { principal: 'alice' })
    await until(() => [alice, bob, alice2].every((t) => t.status.get() === 'connected'))
    void alice.store<number>('counter', 0).set(42).catch(() => {})
    await until(() => alice2.store<number>('counter', 0).get() === 42)
    expect(bob.store<number>('counter', 0).get()).toBe(0)
  })

  it('stop showing a closed tab’s pending ops', async () => {
    const { url } = await serve()
    const a = tab(url, { fetch: offline })
    const b = tab(url)
    await until(() => a.status.get() === 'connected' && b.status.get() === 'connected')
    void a.store<number>('counter', 0).set(7).catch(() => {})
    await until(() => b.store<number>('counter', 0).get() === 7)
    a.close()
    await until(() => b.store<number>('counter', 0).get() === 0)
  })
})

describe('hydration', () => {
  it('shows the server-rendered state at once and continues from its cursor with no gap', async () => {
    const { universe, url } = await serve()
    await universe.store<number>('counter').set(5)
    const rendered = (await (await fetch(`${url}/state`)).json()) as StateResponse
    await universe.store<number>('counter').set(6) // happens between render and hydration
    const replica = connect({ url, EventSource, hydrate: rendered })
    cleanups.push(() => replica.close())
    const counter = replica.store<number>('counter', 0)
    expect(counter.get()).toBe(5)
    expect(counter.version).toBe(1)
    const seen: number[] = []
    counter.subscribe((value) => seen.push(value))
    await until(() => counter.version === 2)
    expect(seen).toEqual([6])
    // And it can write straight away: the hydrated state counts as known.
    await expect(counter.set((n) => n + 1)).resolves.toBe(3)
  })
})
