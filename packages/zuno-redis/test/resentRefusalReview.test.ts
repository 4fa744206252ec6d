/**
 * Review probe (second review of actions): `resentAfterMs` on the refusal path. A resent action in
 * doubt, whose client record expired, that the server now refuses: memory says it may have run
 * (`unknown_client`, the replica rejects with `outcome_unknown`); Redis's REFUSE script ignores
 * `resentAfterMs` and records the refusal as the op's answer, though its first attempt was applied.
 */
import { describe, expect, it } from 'vitest'
import { defineZuno, isZunoError, newClientId, refuseAction } from 'zuno'
import { createMemoryStorage, createUniverse, type Storage } from 'zuno/server'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace } from './support'

const haveRedis = await redisAvailable()

const app = defineZuno({
  stores: { stock: { initial: 1 }, mine: { initial: 0 } },
  actions: {
    buy: {
      run: (tx) => {
        if (tx.get('stock') < 1) refuseAction('Sold out')
        tx.set('stock', (n) => n - 1)
        tx.set('mine', (n) => n + 1)
      },
    },
  },
})
const caller = { principal: '', context: { principal: undefined } }
const LIFETIME = 1000

/** The client's first op is applied, its answer lost; it comes back after the record expired and resends it. */
async function resendAfterExpiry(storage: Storage): Promise<string> {
  const universe = createUniverse({ app, storage })
  cleanups.push(() => universe.close())
  await universe.ready
  const clientId = newClientId()
  const first = await universe.proposeAction({ action: 'buy', epoch: universe.epoch, clientId, opId: 1 }, caller)
  expect(first.type).toBe('accepted')
  await new Promise((resolve) => setTimeout(resolve, LIFETIME + 300))
  try {
    const again = await universe.proposeAction({ action: 'buy', epoch: universe.epoch, clientId, opId: 1, resentAfterMs: LIFETIME + 300 }, caller)
    return again.type === 'accepted' ? 'accepted' : `refused ${again.error.code}`
  } catch (error) {
    return `threw ${isZunoError(error) ? error.code : String(error)}`
  }
}

describe.skipIf(!haveRedis)('review 2: a resent action refused after its client record expired', () => {
  // Problem: scripts.ts REFUSE (and redisStorage.refuse) never look at resentAfterMs. Observed on
  // Redis: 'refused action_refused' (recorded: the replica rejects act() with "Sold out" and frees
  // nothing, though its buy was applied: stock 0, mine 1). Memory: 'refused unknown_client'.
  it('answers as the memory storage does: never a recorded refusal of an op that may have run (review 2, problem 3)', async () => {
    const memory = createMemoryStorage({ clientLifetimeMs: LIFETIME })
    cleanups.push(() => memory.close())
    const onMemory = await resendAfterExpiry(memory)
    const redis = createRedisStorage({ namespace: namespace(), clientLifetimeMs: LIFETIME })
    cleanups.push(() => redis.close())
    const onRedis = await resendAfterExpiry(redis)
    expect(onMemory).not.toBe('refused action_refused')
    expect(onRedis).toBe(onMemory)
  })
})
