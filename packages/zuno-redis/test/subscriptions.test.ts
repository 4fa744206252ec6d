/**
 * Runtime subscriptions across instances on one Redis namespace: a `POST /subscribe` that reaches
 * another instance than the stream's goes over the namespace's pub/sub bus, and so does a
 * revocation. When the bus loses the request, the client reconnects and its URL names the store.
 */
import { createServer } from 'node:http'
import { EventSource } from 'eventsource'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { createNodeHandler, createUniverse, type NodeHandlerOptions, type Principal } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace } from './support'

const haveRedis = await redisAvailable()

/** An instance on the namespace, served over HTTP on 127.0.0.1; `sse` counts the streams it opened. */
async function instance(ns: string, options: NodeHandlerOptions = {}) {
  const storage = createRedisStorage({ namespace: ns })
  const universe = createUniverse({ storage, allowStore: () => true })
  await universe.ready
  const handler = createNodeHandler(universe, options)
  let sse = 0
  const server = createServer((req, res) => {
    if (req.url?.includes('/sse')) sse += 1
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => {
    handler.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await universe.close()
    await storage.close()
  })
  return { universe, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno`, streams: () => sse }
}

/**
 * Two instances on a fresh namespace whose `authorize` lets the members of `members` read `room`
 * (ada, at first): the rights an app changes before it calls `revalidate`.
 */
async function roomOnTwoInstances() {
  const ns = namespace()
  const members = new Set(['ada'])
  const handler = {
    authenticate: () => ({ id: 'ada' }),
    authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => storeKey !== 'room' || members.has(principal?.id ?? ''),
  }
  return { members, holding: await instance(ns, handler), other: await instance(ns, handler) }
}

/** A fetch that sends the control path to `other` and everything else where it was going, as a load balancer without sticky sessions might. */
function controlTo(other: string): typeof fetch {
  return (input, init) => {
    const target = String(input)
    return globalThis.fetch(target.includes('/subscribe') ? `${other}/subscribe` : target, init)
  }
}

describe.skipIf(!haveRedis)('runtime subscriptions on Redis', () => {
  it('follows a store on a stream of one instance through a control request that reached another', async () => {
    const ns = namespace()
    const holding = await instance(ns)
    const other = await instance(ns)
    await other.universe.store('doc:1', 0).set(1)
    const replica = connect({ url: holding.url, EventSource, stores: [], fetch: controlTo(other.url) })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    for (let i = 1; i <= 5; i++) replica.follow(`doc:${i}`)
    await until(() => replica.store('doc:1').get() === 1)
    await other.universe.store('doc:5', 0).set(5)
    await until(() => replica.store('doc:5').get() === 5)
    // Through the bus, not by a new connection.
    expect(holding.streams()).toBe(1)
  })

  it('revokes, from another instance, what an open stream may no longer read', async () => {
    const { members, holding, other } = await roomOnTwoInstances()
    const replica = connect({ url: holding.url, EventSource, stores: ['counter'], fetch: controlTo(other.url) })
    cleanups.push(() => replica.close())
    replica.follow('room')
    await other.universe.store('room', 0).set(1)
    await until(() => replica.store('room').get() === 1)
    members.delete('ada')
    await other.universe.revalidate('ada')
    await until(() => replica.lastError.get()?.code === 'forbidden')
    await other.universe.store('room').set(2)
    await other.universe.store('counter', 0).set(3)
    await until(() => replica.store('counter').get() === 3)
    expect(replica.store('room').get()).toBe(1)
  })

  it('converges when the bus loses the request: the client reconnects and names the store', async () => {
    const ns = namespace()
    const holding = await instance(ns)
    const other = await instance(ns)
    await other.universe.store('doc', 'x').set('there')
    const replica = connect({ url: holding.url, EventSource, stores: [], fetch: controlTo(other.url) })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    // Every pub/sub connection is cut: the holding instance hears nothing on the bus for a while.
    const admin = new Redis('redis://127.0.0.1:6379')
    cleanups.push(() => admin.disconnect())
    await admin.client('KILL', 'TYPE', 'pubsub')
    replica.follow('doc')
    await until(() => replica.store('doc').get() === 'there', 10_000)
    expect(holding.streams()).toBe(2)
  }, 20_000)
})

describe.skipIf(!haveRedis)('review: revocation across a blip of the bus', () => {
  it('a revalidate published while the holding instance’s pub/sub connection reconnects still takes effect', async () => {
    const { members, holding, other } = await roomOnTwoInstances()
    const replica = connect({ url: holding.url, EventSource, stores: ['counter'] })
    cleanups.push(() => replica.close())
    replica.follow('room')
    await other.universe.store('room', 0).set(1)
    await until(() => replica.store('room').get() === 1)
    // The pub/sub connections drop (a failover, a network blip); the rights change meanwhile.
    const admin = new Redis('redis://127.0.0.1:6379')
    cleanups.push(() => admin.disconnect())
    await admin.client('KILL', 'TYPE', 'pubsub')
    members.delete('ada')
    await other.universe.revalidate('ada')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await other.universe.store('room').set(2)
    await other.universe.store('counter', 0).set(3)
    await until(() => replica.store('counter').get() === 3, 5000)
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The principal may no longer read the room: its stream must not carry it.
    expect(replica.store('room').get()).toBe(1)
  }, 20_000)
})

describe.skipIf(!haveRedis)('review: revocation from another instance, then a write at once', () => {
  it('the write after `revalidate` resolved never reaches the revoked stream', async () => {
    const { members, holding, other } = await roomOnTwoInstances()
    const replica = connect({ url: holding.url, EventSource, stores: ['counter'] })
    cleanups.push(() => replica.close())
    replica.follow('room')
    await other.universe.store('room', 0).set(1)
    await until(() => replica.store('room').get() === 1)
    let value = 1
    for (let round = 0; round < 20; round++) {
      members.add('ada')
      await other.universe.revalidate('ada')
      replica.retry()
      await until(() => replica.store('room').get() === value, 5000)
      await other.universe.store('room').set(++value)
      await until(() => replica.store('room').get() === value, 5000)
      members.delete('ada')
      await other.universe.revalidate('ada')
      // At once: the very next write must not reach the stream.
      await other.universe.store('room').set(value + 1)
      await other.universe.store('counter', 0).set(round + 1)
      await until(() => replica.store('counter').get() === round + 1, 5000)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(replica.store('room').get(), `round ${round}`).toBe(value)
      value += 1
    }
  }, 60_000)
})
