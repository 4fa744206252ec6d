/** zuno-redis against a real Redis at 127.0.0.1:6379, with real server processes. */
import { type ChildProcess } from 'node:child_process'
import { createServer, request as httpRequest } from 'node:http'
import { EventSource } from 'eventsource'
import { describe, expect, it } from 'vitest'
import { newClientId } from 'zuno'
import { writerTag } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, openUniverse, post, RawClient, startInstance, state } from './support'

const haveRedis = await redisAvailable()
const anonymous = { principal: '' }

/** An SSE observer (EventSource reconnects with Last-Event-ID) recording every version it is shown. */
function observe(url: string): { versions: number[]; open: () => boolean } {
  const source = new EventSource(`${url}/sse?v=2`)
  cleanups.push(() => source.close())
  const versions: number[] = []
  let opened = false
  source.addEventListener('snapshot', (event) => {
    opened = true
    const counter = (JSON.parse(event.data) as { stores: Record<string, { version: number }> }).stores.counter
    versions.push(counter?.version ?? 0)
  })
  source.addEventListener('state', (event) => {
    const change = JSON.parse(event.data) as { storeKey: string; version: number }
    if (change.storeKey === 'counter') versions.push(change.version)
  })
  return { versions, open: () => opened }
}

describe.skipIf(!haveRedis)('zuno-redis', () => {
  it('commits atomically, answers conflicts and retries, and fans out from the Stream', async () => {
    const ns = namespace()
    const universe = openUniverse(ns)
    await universe.ready
    const clientId = newClientId()
    const op = { storeKey: 'counter', baseVersion: 0, epoch: universe.epoch, state: 5, clientId, opId: 1 }
    expect(await universe.propose(op, anonymous)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 5 })
    expect(await universe.propose(op, anonymous)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 5 })
    expect(await universe.propose({ ...op, opId: 2, state: 9 }, anonymous)).toEqual({ type: 'conflict', storeKey: 'counter', version: 1, state: 5 })
    await until(() => universe.store('counter').version === 1) // delivered by the Stream
    expect(universe.store('counter').get()).toBe(5)
  })

  it('keeps state, epoch and recent events across a restart, so clients resume by id', async () => {
    const ns = namespace()
    const first = openUniverse(ns)
    await first.ready
    const clientId = newClientId()
    for (let v = 0; v < 3; v++) {
      await first.propose({ storeKey: 'counter', baseVersion: v, epoch: first.epoch, state: v + 1, clientId, opId: v + 1 }, anonymous)
    }
    await until(() => first.store('counter').version === 3)
    const cursor = first.snapshot(['counter']).cursor
    await first.close()
    await first.storage.close()
    const second = openUniverse(ns)
    await second.ready
    expect(second.store('counter').get()).toBe(3)
    expect(second.snapshot(['counter']).cursor).toBe(cursor) // same epoch, same sequence
    // The history is read after the start: a resume from before it waits for it (catchUp), then replays.
    await second.catchUp(cursor.replace(/-3$/, '-1'), 1000)
    expect(second.since(cursor.replace(/-3$/, '-1'))?.map((entry) => entry.event.version)).toEqual([2, 3])
    // The client's record lives in Redis: its retry is answered on the new instance, the next op follows.
    const retry = { storeKey: 'counter', baseVersion: 2, epoch: second.epoch, state: 3, clientId, opId: 3 }
    expect(await second.propose(retry, anonymous)).toEqual({ type: 'accepted', storeKey: 'counter', version: 3, state: 3 })
    expect(await second.propose({ ...retry, baseVersion: 3, state: 4, opId: 4 }, anonymous)).toMatchObject({ type: 'accepted', version: 4 })
  })

  it('never writes the secret client id to Redis data', async () => {
    const ns = namespace()
    const universe = openUniverse(ns)
    await universe.ready
    const clientId = newClientId()
    await universe.propose({ storeKey: 'counter', baseVersion: 0, epoch: universe.epoch, state: 1, clientId, opId: 1 }, anonymous)
    const { Redis } = await import('ioredis')
    const redis = new Redis()
    cleanups.push(() => redis.quit())
    const entries = await redis.xrange(`{${ns}}:log`, '-', '+')
    // Only the writer tag, a hash of the id: no part of the id itself.
    expect(JSON.stringify(entries)).not.toContain(clientId.slice(17))
    expect(JSON.stringify(entries)).not.toContain(clientId.slice(0, 16))
    expect(JSON.stringify(entries)).toContain(writerTag(clientId))
  })

  it('gives exactly one winner to concurrent compare-and-set across three instances, and every client converges', async () => {
    const ns = namespace()
    const instances = await Promise.all([startInstance(ns), startInstance(ns), startInstance(ns)])
    const { epoch } = await state(instances[0]?.url as string)
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        post((instances[i % 3] as { url: string }).url, { storeKey: 'counter', baseVersion: 0, epoch, state: i, clientId: newClientId(), opId: 1 }),
      ),
    )
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1)
    expect(answers.filter((answer) => answer.status === 409)).toHaveLength(29)

    const observers = instances.map((instance) => observe(instance.url))
    await until(() => observers.every((o) => o.open()))
    const clients = Array.from({ length: 6 }, (_, i) => new RawClient((instances[i % 3] as { url: string }).url))
    await Promise.all(
      clients.map(async (client) => {
        for (let i = 0; i < 10; i++) await client.update('counter', (n) => (n as number) + 1)
      }),
    )
    // Every write resolved: 60 increments on the winner's version 1, each instance there once it has followed the Stream.
    const value = (answers.find((answer) => answer.status === 200)?.body.state as number) + 60
    await until(() => observers.every((o) => o.versions.at(-1) === 61), 15_000)
    for (const instance of instances) expect((await state(instance.url)).stores.counter).toEqual({ version: 61, state: value })
  }, 60_000)

  it('fails over: after kill -9 of one instance, its clients resume on another with no gap', async () => {
    const ns = namespace()
    const backends = await Promise.all([startInstance(ns), startInstance(ns)])
    const alive = new Set(backends.map((backend) => backend.port))
    // A round-robin proxy in front of the live instances, standing in for a load balancer.
    let turn = 0
    const proxy = createServer((req, res) => {
      const ports = [...alive]
      const port = ports[turn++ % ports.length] as number
      const upstream = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
        answer.on('close', () => res.destroy())
      })
      upstream.on('error', () => res.destroy())
      req.pipe(upstream)
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => {
      proxy.closeAllConnections()
      proxy.close()
    })
    const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/zuno`

    const observers = [observe(url), observe(url), observe(url), observe(url)]
    await until(() => observers.every((o) => o.open()))

    const writer = openUniverse(ns)
    await writer.ready
    for (let i = 0; i < 60; i++) {
      if (i === 20) {
        const victim = backends[0] as { port: number; child: ChildProcess }
        alive.delete(victim.port)
        victim.child.kill('SIGKILL')
      }
      await writer.store<number>('counter').set((n) => n + 1)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await until(() => observers.every((o) => o.versions.at(-1) === 60), 20_000)
    // Every observer saw every version, once and in order: resumed, not re-snapshotted past a gap.
    // (Version 0 is the initial snapshot.)
    for (const { versions } of observers) {
      expect(versions.filter((v, i) => v > 0 && v !== versions[i - 1])).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    }
  }, 60_000)
})
