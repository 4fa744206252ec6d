/** Exactly-once across instances: the client records live in Redis, scoped to the principal. */
import { describe, expect, it } from 'vitest'
import { newClientId } from 'zuno'
import { redisAvailable } from './redisAvailable'
import { namespace, openUniverse, post, redisClient, startInstance, state } from './support'

const haveRedis = await redisAvailable()

describe.skipIf(!haveRedis)('zuno-redis exactly-once', () => {
  it('answers a retry on another instance as the original, never applies an op twice, and keeps users apart', async () => {
    const ns = namespace()
    const [a, b] = (await Promise.all([startInstance(ns, { IDEMPOTENCY_WINDOW: '1' }), startInstance(ns, { IDEMPOTENCY_WINDOW: '1' })])) as [
      { url: string },
      { url: string },
    ]
    const { epoch } = await state(a.url)
    const clientId = newClientId()
    const op = (opId: number, baseVersion: number, value: unknown) => ({ storeKey: 'counter', baseVersion, epoch, state: value, clientId, opId })

    // Accepted on A; the same op retried on B gets the kept answer.
    expect(await post(a.url, op(1, 0, 'one'), 'alice')).toEqual({ status: 200, body: { ok: true, storeKey: 'counter', version: 1, state: 'one' } })
    expect(await post(b.url, op(1, 0, 'one'), 'alice')).toEqual({ status: 200, body: { ok: true, storeKey: 'counter', version: 1, state: 'one' } })

    // A conflict does not advance the mark: the same opId is re-sent on a new base.
    expect(await post(b.url, op(2, 0, 'two'), 'alice')).toMatchObject({ status: 409, body: { error: 'conflict', version: 1, state: 'one' } })
    expect(await post(b.url, op(2, 1, 'two'), 'alice')).toMatchObject({ status: 200, body: { version: 2, state: 'two' } })

    // Window 1: op 1's answer is gone; its retry is a duplicate answered with the current truth, not applied again.
    expect(await post(a.url, op(1, 0, 'one'), 'alice')).toEqual({ status: 200, body: { ok: true, storeKey: 'counter', version: 2, state: 'two', duplicate: true } })
    // op 2 again, with another payload: a reused opId, nothing changes.
    expect(await post(a.url, op(2, 1, 'other'), 'alice')).toMatchObject({ status: 409, body: { error: 'op_id_reused' } })
    // An op past the next one: the storage keeps no such client.
    expect(await post(a.url, op(4, 2, 'four'), 'alice')).toMatchObject({ status: 409, body: { error: 'unknown_client' } })

    // Another user replaying alice's ids reaches a client of their own, which does not exist.
    for (const replay of [op(2, 1, 'two'), op(2, 2, 'mine')]) {
      const answer = await post(b.url, replay, 'mallory')
      expect(answer).toMatchObject({ status: 409, body: { error: 'unknown_client' } })
      expect(answer.body).not.toHaveProperty('state')
    }

    const redis = redisClient()
    const entries = await redis.xrange(`{${ns}}:log`, '-', '+')
    expect(entries.map(([id]) => id)).toEqual(['0-1', '0-2'])
    expect(await redis.hget(`{${ns}}:s:counter`, 'v')).toBe('2')
    expect((await state(b.url)).stores.counter).toEqual({ version: 2, state: 'two' })
    // The record is alice's, under her principal, and expires with the client lifetime.
    const records = await redis.keys(`{${ns}}:c:*`)
    expect(records).toEqual([`{${ns}}:c:5:alice:${clientId}`])
    expect(await redis.pttl(records[0] as string)).toBeGreaterThan(29 * 24 * 3600 * 1000)
  }, 30_000)

  it('records a refusal for good: its retry gets the same refusal on another instance, and the next op follows', async () => {
    const ns = namespace()
    const [a, b] = (await Promise.all([startInstance(ns), startInstance(ns)])) as [{ url: string }, { url: string }]
    const { epoch } = await state(a.url)
    const clientId = newClientId()
    const op = { storeKey: 'counter', baseVersion: 0, epoch, state: 1, clientId, opId: 1 }
    const refused = await post(a.url, op, 'reader')
    expect(refused).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    expect(await post(b.url, op, 'reader')).toEqual(refused)
    expect(await post(b.url, { ...op, opId: 2 }, 'reader')).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    expect(await post(a.url, { ...op, opId: 4 }, 'reader')).toMatchObject({ status: 409, body: { error: 'unknown_client' } })
    const redis = redisClient()
    expect(await redis.hget(`{${ns}}:c:6:reader:${clientId}`, 'm')).toBe('2')
    expect(await redis.xlen(`{${ns}}:log`)).toBe(0)
  }, 30_000)

  it('answers a forgotten op with a truth at least as new as the op, even on an instance that has not followed the Stream yet', async () => {
    const ns = namespace()
    const a = openUniverse(ns, { idempotencyWindow: 1 })
    const b = openUniverse(ns, { idempotencyWindow: 1 })
    await Promise.all([a.ready, b.ready])
    const principal = { principal: 'alice' }
    for (let round = 0; round < 20; round++) {
      const clientId = newClientId()
      const version = b.store('counter').version
      const op = (opId: number, baseVersion: number, value: number) => ({ storeKey: 'counter', baseVersion, epoch: b.epoch, state: value, clientId, opId })
      expect(await b.propose(op(1, version, round * 2), principal)).toMatchObject({ type: 'accepted', version: version + 1 })
      expect(await b.propose(op(2, version + 1, round * 2 + 1), principal)).toMatchObject({ type: 'accepted', version: version + 2 })
      // Op 1 again, on A at once: processed, and answered no older than op 2.
      const retry = await a.propose(op(1, version, round * 2), principal)
      expect(retry).toEqual({ type: 'accepted', storeKey: 'counter', version: version + 2, state: round * 2 + 1, duplicate: true })
    }
  })
})
