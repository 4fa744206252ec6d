/** Two instances on one Redis, one of them behind: resumes wait for it, replicas never go back. */
import { createConnection, createServer as createTcpServer, type Socket } from 'node:net'
import { EventSource } from 'eventsource'
import { describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { type CommittedEvent, createUniverse, type Storage, type SyncServerOptions } from 'zuno/server'
import { openRawStream } from '../../zuno/test/support/sseReader'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, openUniverse, serveOverHttp } from './support'

const haveRedis = await redisAvailable()

/**
 * A Redis storage whose committed events reach its universe only while not held: the instance's
 * follow of the shared stream falls behind the other instance's, as under load or a slow network.
 */
function laggingStorage(ns: string) {
  const storage = createRedisStorage({ namespace: ns })
  const listeners = new Set<(event: CommittedEvent) => void>()
  let held: CommittedEvent[] | undefined
  const deliver = (event: CommittedEvent) => {
    for (const listener of listeners) listener(event)
  }
  let following = false
  const lagging: Storage = {
    load: () => storage.load(),
    commit: (request) => storage.commit(request),
    refuse: (request) => storage.refuse(request),
    onCommit(listener) {
      // The storage starts following on its first listener, which must come after `load()`.
      if (!following) storage.onCommit((event) => (held === undefined ? deliver(event) : held.push(event)))
      following = true
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    onReset: (listener) => storage.onReset?.(listener) ?? (() => {}),
    health: () => storage.health?.() ?? { ok: true },
    close: () => storage.close(),
  }
  return {
    storage: lagging,
    hold: () => {
      held ??= []
    },
    release: () => {
      const events = held ?? []
      held = undefined
      for (const event of events) deliver(event)
    },
  }
}

/** A TCP proxy, as a load balancer: `switchTo` cuts every connection and sends new ones to another port. */
async function balancer(port: number) {
  let target = port
  const sockets = new Set<Socket>()
  const server = createTcpServer((client) => {
    const upstream = createConnection(target, '127.0.0.1')
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {})
    }
    client.pipe(upstream).pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno`,
    switchTo(next: number) {
      target = next
      for (const socket of sockets) socket.destroy()
    },
  }
}

/** Instance A, up to date, and instance B, on the same namespace, whose follow can be held back. */
async function twoInstances(options: SyncServerOptions = {}) {
  const ns = namespace()
  const a = openUniverse(ns)
  await a.ready
  const lagging = laggingStorage(ns)
  const b = createUniverse({ stores: { counter: 0 }, storage: lagging.storage })
  cleanups.push(async () => {
    await b.close()
    await lagging.storage.close()
  })
  await b.ready
  return { a, b, lagging, servedA: await serveOverHttp(a), servedB: await serveOverHttp(b, options) }
}

describe.skipIf(!haveRedis)('an instance that lags behind another', () => {
  it('makes a stream that resumes past its position wait until it has caught up, then replays from there', async () => {
    let lagging: ReturnType<typeof laggingStorage> | undefined
    // B catches up only once the resume has reached it, so the stream must wait for it.
    const authenticate: SyncServerOptions['authenticate'] = (request) => {
      if (request.query.get('lastEventId') !== null) setImmediate(() => lagging?.release())
      return { id: 'reader' }
    }
    const instances = await twoInstances({ authenticate })
    lagging = instances.lagging
    const { a, b, servedB } = instances
    lagging.hold()
    await a.store<number>('counter').set(1)
    await a.store<number>('counter').set(2)
    const seen = a.cursor
    expect(b.cursor).not.toBe(seen)

    const stream = await openRawStream(`${servedB.url}/sse?lastEventId=${seen}`)
    cleanups.push(() => stream.close())

    // Nothing was missed: no snapshot from before what the client saw, just the end of the replay.
    expect((await stream.nextEvent()).event).toBe('resumed')
    expect(b.cursor).toBe(seen)
    await a.store<number>('counter').set(3)
    const next = await stream.nextEvent()
    expect(next.event).toBe('state')
    expect(JSON.parse(next.data ?? '')).toMatchObject({ storeKey: 'counter', version: 3, state: 3 })
  })

  it('keeps the newer state when a replica reconnects to the instance that is behind, and writes on it', async () => {
    const { a, b, lagging, servedA, servedB } = await twoInstances({ resumeWaitMs: 50 })
    const proxy = await balancer(servedA.port)
    const replica = connect({ url: proxy.url, EventSource, tabs: false })
    cleanups.push(() => replica.close())
    const counter = replica.store<number>('counter', 0)
    const shown: number[] = []
    counter.subscribe((value) => shown.push(value))
    await until(() => replica.status.get() === 'connected')

    lagging.hold()
    await a.store<number>('counter').set(1)
    await a.store<number>('counter').set(2)
    await until(() => counter.version === 2)

    // The stream moves to B, which is still at version 0 and, past its wait, sends its own snapshot.
    proxy.switchTo(servedB.port)
    await until(() => replica.lastEventId === b.cursor)
    expect({ version: counter.version, state: counter.get() }).toEqual({ version: 2, state: 2 })
    expect(shown).toEqual([1, 2])

    // B catches up; the replica's next write builds on version 2, not on B's old snapshot.
    lagging.release()
    expect(await counter.set((n) => n + 10)).toBe(3)
    expect(a.store<number>('counter').get()).toBe(12)
    expect({ version: counter.version, state: counter.get() }).toEqual({ version: 3, state: 12 })
    expect(shown).not.toContain(0)
  })
})
