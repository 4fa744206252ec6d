/** zuno-redis against a real Redis at 127.0.0.1:6379, with real server processes. */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer, request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import { EventSource } from 'eventsource'
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type ReplicaUniverse } from 'zuno'
import { createUniverse } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'

const haveRedis = await redisAvailable()
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A namespace of its own per test, deleted afterwards. */
function namespace(): string {
  const ns = `zuno-test-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  cleanups.push(async () => {
    const redis = new Redis('redis://127.0.0.1:6379')
    const keys = await redis.keys(`{${ns}}:*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  return ns
}

const fixture = fileURLToPath(new URL('./fixtures/instance.ts', import.meta.url))

/** Starts one server process on Redis; resolves with its port and the process. */
function startInstance(ns: string): Promise<{ port: number; child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, NAMESPACE: ns },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  cleanups.push(() => child.kill('SIGKILL'))
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const port = /READY (\d+)/.exec(chunk.toString())?.[1]
      if (port) resolve({ port: Number(port), child, url: `http://127.0.0.1:${port}/zuno` })
    })
    child.once('exit', (code) => reject(new Error(`instance exited with ${code}`)))
  })
}

function replica(url: string): ReplicaUniverse {
  const universe = connect({ url, EventSource, maxAttempts: 1000 })
  cleanups.push(() => universe.close())
  return universe
}

const propose = (url: string, body: Record<string, unknown>) =>
  fetch(`${url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ storeKey: 'counter', baseVersion: 0, state: 1, clientId: 'c', opId: 1, ...body }),
  })

describe.skipIf(!haveRedis)('zuno-redis', () => {
  it('commits atomically, answers conflicts and retries, and fans out from the Stream', async () => {
    const ns = namespace()
    const universe = createUniverse({ stores: { counter: 0 }, storage: createRedisStorage({ namespace: ns }) })
    cleanups.push(() => universe.close())
    await universe.ready
    const op = { storeKey: 'counter', baseVersion: 0, state: 5, clientId: 'a', opId: 1 }
    expect(await universe.propose(op)).toMatchObject({ type: 'accepted', event: { version: 1, seq: 1 } })
    expect(await universe.propose(op)).toEqual({ type: 'duplicate', version: 1, state: 5 })
    expect(await universe.propose({ ...op, opId: 2, state: 9 })).toEqual({ type: 'conflict', version: 1, state: 5 })
    await until(() => universe.store('counter').version === 1) // delivered by the Stream
    expect(universe.store('counter').get()).toBe(5)
  })

  it('keeps state, epoch and recent events across a restart, so clients resume by id', async () => {
    const ns = namespace()
    const first = createUniverse({ stores: { counter: 0 }, storage: createRedisStorage({ namespace: ns }) })
    await first.ready
    for (let v = 0; v < 3; v++) await first.propose({ storeKey: 'counter', baseVersion: v, state: v + 1, clientId: 'a', opId: v + 1 })
    await until(() => first.store('counter').version === 3)
    const cursor = first.snapshot().cursor
    await first.close()
    const second = createUniverse({ stores: { counter: 0 }, storage: createRedisStorage({ namespace: ns }) })
    cleanups.push(() => second.close())
    await second.ready
    expect(second.store('counter').get()).toBe(3)
    expect(second.snapshot().cursor).toBe(cursor) // same epoch, same sequence
    expect(second.since(cursor.replace(/-3$/, '-1'))?.map((entry) => entry.event.version)).toEqual([2, 3])
  })

  it('gives exactly one winner to concurrent compare-and-set across three instances, and every client converges', async () => {
    const ns = namespace()
    const instances = await Promise.all([startInstance(ns), startInstance(ns), startInstance(ns)])
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => propose((instances[i % 3] as { url: string }).url, { clientId: `racer${i}`, state: i })),
    )
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1)
    expect(answers.filter((answer) => answer.status === 409)).toHaveLength(29)

    const replicas = Array.from({ length: 6 }, (_, i) => replica((instances[i % 3] as { url: string }).url))
    await Promise.all(replicas.flatMap((r) => Array.from({ length: 10 }, () => r.store<number>('counter').set((n) => n + 1))))
    const { version, state } = await (await fetch(`${instances[0]?.url}/state`)).json().then((s) => s.stores.counter)
    expect(version).toBe(61)
    await until(() => replicas.every((r) => r.store('counter').version === 61 && r.store('counter').get() === state), 15_000)
    for (const instance of instances) {
      expect((await (await fetch(`${instance.url}/state`)).json()).stores.counter).toEqual({ version: 61, state })
    }
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

    const observers = [replica(url), replica(url), replica(url), replica(url)]
    const seen = observers.map(() => [] as number[])
    observers.forEach((observer, i) => {
      observer.store<number>('counter').subscribe(() => (seen[i] as number[]).push(observer.store('counter').version))
    })
    await until(() => observers.every((o) => o.status.get() === 'connected'))

    const writer = createUniverse({ stores: { counter: 0 }, storage: createRedisStorage({ namespace: ns }) })
    cleanups.push(() => writer.close())
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
    await until(() => observers.every((o) => o.store('counter').version === 60), 20_000)
    // Every observer saw every version, once and in order: resumed, not re-snapshotted past a gap.
    // (Version 0 is the initial snapshot.)
    for (const versions of seen) {
      expect(versions.filter((v, i) => v > 0 && v !== versions[i - 1])).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    }
  }, 60_000)
})
