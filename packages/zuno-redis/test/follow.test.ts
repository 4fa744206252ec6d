/** The follow loop: isolated listeners, stalls and outages of Redis, health. */
import { type ChildProcess, spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { describe, expect, it, vi } from 'vitest'
import { newClientId, parseEventId } from 'zuno'
import type { CommittedEvent, ProposalResult, StorageHealth } from 'zuno/server'
import { freePort } from '../../zuno/test/support/freePort'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, openUniverse, redisClient, sleep } from './support'

const haveRedis = await redisAvailable()
const anonymous = { principal: '' }

/** A Redis server of this test's own (DEBUG allowed, no persistence) on a free port. */
async function privateRedis(port?: number): Promise<{ url: string; port: number; child: ChildProcess }> {
  const at = port ?? (await freePort())
  const child = spawn('redis-server', ['--port', String(at), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'local'], {
    stdio: 'ignore',
  })
  cleanups.push(() => child.kill('SIGKILL'))
  const url = `redis://127.0.0.1:${at}`
  await until(async () => {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === 'PONG'
    } catch {
      return false
    } finally {
      probe.disconnect()
    }
  })
  return { url, port: at, child }
}

describe.skipIf(!haveRedis)('zuno-redis follow loop', () => {
  it('goes on delivering every event to every listener when one listener throws', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    cleanups.push(() => errors.mockRestore())
    const ns = namespace()
    const storage = createRedisStorage({ namespace: ns })
    cleanups.push(() => storage.close())
    const { epoch } = await storage.load()
    let thrown = 0
    const got: number[] = []
    storage.onCommit(() => {
      thrown += 1
      throw new Error('a faulty listener')
    })
    storage.onCommit((event: CommittedEvent) => got.push(event.seq))
    const clientId = newClientId()
    for (let i = 0; i < 5; i++) {
      const write = { storeKey: 'counter', baseVersion: i, state: i + 1 }
      const outcome = await storage.commit({ principal: '', clientId, opId: i + 1, digest: `d${i}`, epoch, write })
      expect(outcome.type).toBe('accepted')
    }
    await until(() => got.length === 5)
    expect(got).toEqual([1, 2, 3, 4, 5])
    expect(thrown).toBe(5)
    expect(storage.health?.()).toEqual({ ok: true })
  })

  it('a DEBUG SLEEP stall: requests wait or health says so, then everything recovers and nothing is lost', async () => {
    const redis = await privateRedis()
    const ns = namespace(redis.url)
    const universe = openUniverse(ns, { url: redis.url })
    await universe.ready
    const clientId = newClientId()
    const results: Array<{ result: ProposalResult; ms: number }> = []
    const health: StorageHealth[] = []
    let writing = true
    const writes = (async () => {
      for (let opId = 1; writing; opId++) {
        const started = Date.now()
        const version = universe.store('counter').version
        const request = { storeKey: 'counter', baseVersion: version, epoch: universe.epoch, state: version + 1, clientId, opId }
        const result = await universe.propose(request, anonymous)
        results.push({ result, ms: Date.now() - started })
      }
    })()
    const sampling = setInterval(() => health.push(universe.storage.health?.() ?? { ok: true }), 50)
    cleanups.push(() => clearInterval(sampling))
    await sleep(200)
    await redisClient(redis.url).call('DEBUG', 'SLEEP', '1')
    await sleep(300)
    writing = false
    await writes
    clearInterval(sampling)

    const slowest = Math.max(...results.map((r) => r.ms))
    expect(slowest >= 800 || health.some((h) => !h.ok)).toBe(true)
    await until(() => universe.storage.health?.().ok === true)
    // Every acknowledged write is in the Stream and in the store, in order.
    const accepted = results.filter((r) => r.result.type === 'accepted').map((r) => (r.result as { version: number }).version)
    expect(accepted).toEqual(Array.from({ length: accepted.length }, (_, i) => i + 1))
    const entries = await redisClient(redis.url).xrange(`{${ns}}:log`, '-', '+')
    expect(entries.map(([id]) => id)).toEqual(accepted.map((v) => `0-${v}`))
    await until(() => universe.store('counter').version === accepted.length)
  }, 30_000)

  it('Redis down: health fails and writes are refused 503; restarted empty: a new epoch, reloaded, writes go on', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    cleanups.push(() => errors.mockRestore())
    const redis = await privateRedis()
    const ns = namespace(redis.url)
    const universe = openUniverse(ns, { url: redis.url })
    await universe.ready
    const before = universe.epoch
    const clientId = newClientId()
    await universe.propose({ storeKey: 'counter', baseVersion: 0, epoch: before, state: 1, clientId, opId: 1 }, anonymous)
    await until(() => universe.store('counter').version === 1)
    let resets = 0
    universe.onReset(() => (resets += 1))

    redis.child.kill('SIGKILL')
    await until(() => universe.storage.health?.().ok === false, 10_000)
    await expect(universe.propose({ storeKey: 'counter', baseVersion: 1, epoch: before, state: 2, clientId, opId: 2 }, anonymous)).rejects.toMatchObject({
      code: 'unavailable',
    })

    // A restart without persistence: the namespace comes back empty.
    await privateRedis(redis.port)
    await until(() => resets === 1 && universe.storage.health?.().ok === true, 15_000)
    expect(universe.epoch).not.toBe(before)
    expect(universe.store('counter').version).toBe(0)
    const next = { storeKey: 'counter', baseVersion: 0, epoch: universe.epoch, state: 7, clientId: newClientId(), opId: 1 }
    expect(await universe.propose(next, anonymous)).toMatchObject({ type: 'accepted', version: 1 })
    // The old epoch's op is refused, never applied on the new history.
    expect(await universe.propose({ ...next, epoch: before, baseVersion: 1, opId: 2 }, anonymous)).toMatchObject({
      type: 'refused',
      error: { code: 'epoch_changed' },
    })
  }, 40_000)

  it('after a reset, holds events back until the universe has loaded the new epoch, then goes on from its image', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    cleanups.push(() => warn.mockRestore())
    const ns = namespace()
    const a = createRedisStorage({ namespace: ns })
    cleanups.push(() => a.close())
    await a.load()
    let phase = 'running'
    const delivered: Array<{ id: string; phase: string }> = []
    let image: Awaited<ReturnType<typeof a.load>> | undefined
    a.onCommit((event) => delivered.push({ id: event.id, phase }))
    a.onReset?.(() => {
      phase = 'reset'
      // A slow reload: events committed meanwhile must wait for it, not reach the old universe.
      setTimeout(async () => {
        image = await a.load()
        phase = 'loaded'
      }, 700)
    })
    // The namespace is wiped; another instance starts on it (a new epoch) and writes at once.
    const redis = redisClient()
    await redis.del(...(await redis.keys(`{${ns}}:*`)))
    const b = createRedisStorage({ namespace: ns })
    cleanups.push(() => b.close())
    const { epoch } = await b.load()
    const clientId = newClientId()
    for (let i = 0; i < 6; i++) {
      const write = { storeKey: 'counter', baseVersion: i, state: i + 1 }
      await b.commit({ principal: '', clientId, opId: i + 1, digest: `d${i}`, epoch, write })
      await sleep(200)
    }
    await until(() => phase === 'loaded' && delivered.length > 0 && delivered.at(-1)?.id === `${epoch}-6`, 10_000)
    expect(delivered.filter((d) => d.phase !== 'loaded')).toEqual([])
    expect(image?.epoch).toBe(epoch)
    // What the image had is not delivered again; what came after it is, in order.
    const after = delivered.map((d) => parseEventId(d.id)?.seq)
    expect(after).toEqual(Array.from({ length: 6 - (image?.seq ?? 0) }, (_, i) => (image?.seq ?? 0) + i + 1))
  }, 30_000)
})
