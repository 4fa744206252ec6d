/** Review probes for actions on Redis (issue #15): a large action, within the limit and past it. */
import { describe, expect, it } from 'vitest'
import { defineZuno, isZunoError, newClientId } from 'zuno'
import { createUniverse, type ActionResult } from 'zuno/server'
import { createMemoryStorage } from 'zuno/server'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace } from './support'

const haveRedis = await redisAvailable()

const app = defineZuno({ stores: { counter: { initial: 0 } }, actions: {} })
const caller = { principal: '', context: { principal: undefined } }
const fanOut = { many: (tx: { set: (key: string, value: unknown) => void }, args: unknown) => { for (let i = 0; i < (args as { n: number }).n; i++) tx.set(`s${i}`, i) } }

async function outcome(storage: ReturnType<typeof createRedisStorage> | ReturnType<typeof createMemoryStorage>, n: number): Promise<string> {
  const universe = createUniverse({ app, storage, allowStore: () => true, actions: fanOut })
  cleanups.push(() => universe.close())
  await universe.ready
  try {
    const result: ActionResult = await universe.proposeAction({ action: 'many', args: { n }, epoch: universe.epoch, clientId: newClientId(), opId: 1 }, caller)
    return result.type === 'accepted' ? `accepted ${result.changes.length}` : `refused ${result.error.code}`
  } catch (error) {
    return `threw ${isZunoError(error) ? `${error.code}: ${error.message}` : String(error)}`
  }
}

describe.skipIf(!haveRedis)('review: zuno-redis actions', () => {
  it('an action writing 1,000 stores commits on Redis as on memory', async () => {
    const storage = createRedisStorage({ namespace: namespace() })
    cleanups.push(() => storage.close())
    expect(await outcome(storage, 1000)).toBe('accepted 1000')
  })

  it('refuses an action that reaches more than 1,000 stores, on memory and on Redis alike, recorded (review problem 7)', async () => {
    expect(await outcome(createMemoryStorage(), 1001)).toBe('refused action_failed')
    expect(await outcome(createMemoryStorage({ lazy: true }), 1001)).toBe('refused action_failed')
    const storage = createRedisStorage({ namespace: namespace() })
    cleanups.push(() => storage.close())
    // Before the limit: 503 unavailable from Redis's script arguments past about 1,330 stores, retried forever.
    expect(await outcome(storage, 2000)).toBe('refused action_failed')
  })
})
