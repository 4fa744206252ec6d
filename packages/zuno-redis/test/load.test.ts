/** `load()`: one moment's image (no store: they are read with `read`), the data format, and a v1 namespace migrated. */
import { describe, expect, it } from 'vitest'
import { newClientId } from 'zuno'
import type { Storage, StorageImage } from 'zuno/server'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, redisClient } from './support'

const haveRedis = await redisAvailable()

function storage(ns: string) {
  const opened = createRedisStorage({ namespace: ns })
  cleanups.push(() => opened.close())
  return opened
}

describe.skipIf(!haveRedis)('zuno-redis load', () => {
  it('counts stores and reads seq as of one moment, while stores are being created', async () => {
    const ns = namespace()
    const writer = storage(ns)
    const { epoch } = await writer.load()
    const reader = storage(ns)
    let writing = true
    const writes = (async () => {
      for (let i = 1; writing; i++) {
        const write = { storeKey: `s${i}`, baseVersion: 0, state: i }
        await writer.commit({ principal: '', clientId: newClientId(), opId: 1, digest: 'd', epoch, write })
      }
    })()
    for (let round = 0; round < 50; round++) {
      const image = await loadWhole(reader)
      // Store s<i> was created by event i: as many stores as events up to the image's seq.
      expect(image.stores.size).toBe(0)
      expect(image.storeCount).toBe(image.seq)
      expect(image.recent?.at(-1)?.seq ?? 0).toBe(image.seq)
    }
    writing = false
    await writes
  })

  it('migrates a format 1 namespace to a new epoch, keeping its stores, and refuses a newer format', async () => {
    const ns = namespace()
    const redis = redisClient()
    await redis.set(`{${ns}}:epoch`, 'v1epoch')
    await redis.set(`{${ns}}:seq`, 2)
    await redis.sadd(`{${ns}}:stores`, 'counter')
    await redis.hset(`{${ns}}:s:counter`, 'v', 2, 's', '2')
    await redis.xadd(`{${ns}}:log`, '0-1', 'k', 'counter', 'v', 1, 's', '1', 'c', 'some-client', 'o', 1)
    await redis.xadd(`{${ns}}:log`, '0-2', 'k', 'counter', 'v', 2, 's', '2', 'c', 'some-client', 'o', 2)
    const image = await loadWhole(storage(ns))
    expect(image.epoch).not.toBe('v1epoch')
    expect(image).toMatchObject({ seq: 2, recent: [], storeCount: 1 })
    const migrated = storage(ns)
    await migrated.load()
    expect((await migrated.read?.(['counter']))?.stores.get('counter')).toEqual({ version: 2, state: 2 })
    expect(await redis.hget(`{${ns}}:epoch`, 'format')).toBe('2')

    await redis.hset(`{${ns}}:epoch`, 'format', 3)
    await expect(storage(ns).load()).rejects.toThrow(/format 3; this version reads format 2/)
  })

  it('loads at most `recent` events and `recentBytes` of them, the newest, contiguous up to seq', async () => {
    const ns = namespace()
    const writer = storage(ns)
    const { epoch } = await writer.load()
    const clientId = newClientId()
    const big = 'x'.repeat(10_000)
    for (let i = 0; i < 250; i++) {
      const write = { storeKey: 'big', baseVersion: i, state: `${i}${big}` }
      await writer.commit({ principal: '', clientId, opId: i + 1, digest: `d${i}`, epoch, write })
    }
    const seqs = (image: { recent?: Array<{ seq: number }> }) => image.recent?.map((event) => event.seq)
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    expect(seqs(await loadWhole(storage(ns)))).toEqual(range(1, 250))
    const counted = createRedisStorage({ namespace: ns, recent: 120 })
    cleanups.push(() => counted.close())
    expect(seqs(await loadWhole(counted))).toEqual(range(131, 250))
    const bounded = createRedisStorage({ namespace: ns, recentBytes: 50_500 })
    cleanups.push(() => bounded.close())
    expect(seqs(await loadWhole(bounded))).toEqual(range(246, 250))
  })
})

/** `load()`, with the recent events the storage reads after it (`recent()`), as a universe ends up with them. */
async function loadWhole(storage: Storage): Promise<StorageImage> {
  const image = await storage.load()
  expect(image.recent).toBeUndefined()
  return { ...image, recent: (await storage.recent?.()) ?? [] }
}
