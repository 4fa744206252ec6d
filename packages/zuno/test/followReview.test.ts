/**
 * Review of `replica.follow` against a real server on 127.0.0.1 with the real `eventsource`
 * client: what a reconnect does to a replica whose stores were revoked, or that follows many.
 */
import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type ReplicaOptions, type ReplicaUniverse } from '../src/index'
import { createNodeHandler, createUniverse, type NodeHandlerOptions, type Principal } from '../src/server/index'
import { SimBrowser } from './simulation/simBrowser'
import type { VirtualClock } from './simulation/virtualClock'
import { crashableChannel } from './support/crashableChannel'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A real server whose open connections can all be cut, as a network blip or a deploy would. */
async function startCuttable(handlerOptions: NodeHandlerOptions = {}, delaySubscribe: () => number = () => 0) {
  const universe = createUniverse({ stores: { counter: 0 }, allowStore: () => true })
  await universe.ready
  const handler = createNodeHandler(universe, handlerOptions)
  const sockets = new Set<Socket>()
  const streams: string[] = []
  const sseSockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    if (req.url?.includes('/sse')) {
      streams.push(req.url)
      sseSockets.add(req.socket)
    }
    const delay = req.url?.includes('/subscribe') ? delaySubscribe() : 0
    if (delay > 0) setTimeout(() => handler(req, res), delay)
    else handler(req, res)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  cleanups.push(async () => {
    handler.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await universe.close()
  })
  return {
    universe,
    streams,
    url: `http://127.0.0.1:${port}/zuno`,
    cut() {
      for (const socket of sockets) socket.destroy()
    },
    /** Cuts the open streams only: requests in flight go on. */
    cutStreams() {
      for (const socket of sseSockets) socket.destroy()
      sseSockets.clear()
    },
  }
}

function replicaOf(url: string, options: Partial<ReplicaOptions> = {}): ReplicaUniverse {
  const replica = connect({ url, EventSource, ...options })
  cleanups.push(() => replica.close())
  return replica
}

describe('a reconnect after a revocation', () => {
  it('keeps the other stores of a replica one of whose own `stores` was revoked', async () => {
    const members = new Set(['ada'])
    const zuno = await startCuttable({
      authenticate: () => ({ id: 'ada' }),
      authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => storeKey !== 'room' || members.has(principal?.id ?? ''),
    })
    await zuno.universe.store('room', 0).set(1)
    const replica = replicaOf(zuno.url, { stores: ['room', 'counter'] })
    await until(() => replica.store('room').get() === 1)
    members.delete('ada')
    await zuno.universe.revalidate('ada')
    await until(() => replica.lastError.get()?.code === 'forbidden')
    // A network blip: the stream reconnects. The counter must keep syncing.
    zuno.cut()
    await until(() => zuno.streams.length >= 2)
    await zuno.universe.store('counter').set(5)
    await until(() => replica.store('counter').get() === 5, 3000)
    expect(replica.store('room').get()).toBe(1)
  })
})

describe('a reconnect of a replica that follows many stores', () => {
  it('reconnects with 600 documents followed (uuid keys), within MAX_STORES_PER_STREAM', async () => {
    const zuno = await startCuttable()
    const keys = Array.from({ length: 600 }, (_, i) => `doc:${crypto.randomUUID()}-${i}`)
    for (const key of keys) await zuno.universe.store(key, 0).set(1)
    const replica = replicaOf(zuno.url, { stores: [] })
    await until(() => replica.status.get() === 'connected')
    for (const key of keys) replica.follow(key)
    await until(() => keys.every((key) => replica.store(key).get() === 1), 5000)
    // A network blip: the stream reconnects, naming the 600 stores in its URL (about 30 KB, past
    // node:http's default 16 KB of headers: answered 431 before the handler).
    zuno.cut()
    await zuno.universe.store(keys[0] as string).set(2)
    await zuno.universe.store('counter').set(7)
    replica.follow('counter')
    await until(() => replica.store('counter').get() === 7 && replica.store(keys[0] as string).get() === 2, 5000)
    expect(replica.status.get()).toBe('connected')
  })
})

const realClock = { get now() { return Date.now() }, setTimeout: (run: () => void, ms: number) => setTimeout(run, ms) } as unknown as VirtualClock
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('a replica that follows more than MAX_STORES_PER_STREAM', () => {
  it('keeps syncing the stores it followed first (one follow too many must not cost the whole stream)', async () => {
    const zuno = await startCuttable()
    await zuno.universe.store('counter').set(1)
    const replica = replicaOf(zuno.url, { stores: ['counter'] })
    await until(() => replica.store('counter').get() === 1)
    // A long list, each row showing its document: 1,001 follows (short keys: the URL stays small).
    for (let i = 0; i < 1001; i++) replica.follow(`d${i}`)
    await sleep(1000)
    await zuno.universe.store('counter').set(2)
    await until(() => replica.store('counter').get() === 2, 3000)
  })
})

describe('a follower tab that goes without a goodbye', () => {
  it('is not followed for by the leader’s stream forever (a closed or crashed tab runs no close())', async () => {
    const zuno = await startCuttable()
    await zuno.universe.store('doc', 0).set(1)
    const browser = new SimBrowser(realClock, () => 1)
    const leader = replicaOf(zuno.url, { stores: [], tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor('leader'), followGraceMs: 0 })
    await until(() => leader.status.get() === 'connected')
    // The follower's channel goes dead at once when its tab does: nothing it posts after leaves it.
    const crashable = crashableChannel(browser)
    const follower = replicaOf(zuno.url, { stores: [], tabs: true, BroadcastChannel: crashable.Channel, locks: browser.locksFor('follower'), followGraceMs: 0 })
    await until(() => follower.status.get() === 'connected')
    follower.follow('doc')
    await until(() => leader.store('doc').get() === 1)
    // The tab is closed (no pagehide handler runs close(), or it crashed): its lock goes, its goodbye never comes.
    crashable.crash()
    follower.close()
    await sleep(1500)
    await zuno.universe.store('doc').set(2)
    await zuno.universe.store('counter').set(3)
    leader.follow('counter')
    await until(() => leader.store('counter').get() === 3)
    await sleep(100)
    // No tab follows the document any more: the leader's stream should not carry it.
    expect(leader.store('doc').get()).toBe(1)
  })
})

describe('a follow while a control request of the previous stream is still in flight', () => {
  it('is told to the new stream once that request settles', async () => {
    let slow = true
    // The first POST /subscribe is slow (a busy instance, a slow network): the stream drops meanwhile.
    const zuno = await startCuttable({}, () => (slow ? ((slow = false), 800) : 0))
    await zuno.universe.store('a', 0).set(1)
    await zuno.universe.store('b', 0).set(1)
    const replica = replicaOf(zuno.url, { stores: [] })
    await until(() => replica.status.get() === 'connected')
    replica.follow('a')
    await sleep(100)
    zuno.cutStreams()
    await until(() => zuno.streams.length >= 2 && replica.status.get() === 'connected')
    await until(() => replica.store('a').get() === 1)
    // Mounted while the first request still waits for its answer.
    replica.follow('b')
    await sleep(1200)
    await zuno.universe.store('b').set(2)
    await until(() => replica.store('b').get() === 2, 3000)
  })
})

describe('a control request refused for one store it follows', () => {
  it('still stops following what it unfollowed', async () => {
    let slow = true
    const zuno = await startCuttable(
      { authorize: ({ storeKey }: { storeKey: string }) => storeKey !== 'room' },
      () => (slow ? ((slow = false), 500) : 0),
    )
    await zuno.universe.store('doc', 0).set(1)
    const replica = replicaOf(zuno.url, { stores: [], followGraceMs: 0 })
    await until(() => replica.status.get() === 'connected')
    const release = replica.follow('doc') // its request is slow: what follows waits for it, and goes in one request
    await sleep(50)
    release()
    replica.follow('room') // refused (403): the request that also unfollows the document
    await until(() => replica.lastError.get()?.code === 'forbidden', 3000)
    await until(() => replica.store('doc').get() === 1)
    await sleep(200)
    await zuno.universe.store('doc').set(2)
    await zuno.universe.store('counter').set(3)
    replica.follow('counter')
    await until(() => replica.store('counter').get() === 3)
    await sleep(100)
    // Nobody holds the document any more: its change must not come.
    expect(replica.store('doc').get()).toBe(1)
  })
})

describe('a reconnect of a replica whose followed keys are full of colons', () => {
  it('keeps its URL within what node:http takes (the budget counts characters as they are encoded)', async () => {
    const zuno = await startCuttable()
    // Legal keys, each `:` three characters in a URL (%3A), and each `,` between them three too (%2C).
    const keys = Array.from({ length: 300 }, (_, i) => `k${':'.repeat(60)}${i}`)
    for (const key of keys) await zuno.universe.store(key, 0).set(1)
    const replica = replicaOf(zuno.url, { stores: [] })
    await until(() => replica.status.get() === 'connected')
    for (const key of keys) replica.follow(key)
    await until(() => keys.every((key) => replica.store(key).get() === 1), 5000)
    // A network blip: the reconnect names the stores in its URL, up to its budget.
    zuno.cut()
    await zuno.universe.store(keys[0] as string).set(2)
    await until(() => replica.store(keys[0] as string).get() === 2, 5000)
    expect(replica.status.get()).toBe('connected')
  })
})
