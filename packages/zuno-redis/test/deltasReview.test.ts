/**
 * Review of issue #16 on Redis (what held): a merged patch accepted through one instance, its answer
 * lost, retried through the other with the same body after more writes, is answered as a duplicate
 * and applied once.
 */
import { describe, expect, it } from 'vitest'
import { defineZuno, newClientId, type Patch } from 'zuno'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { namespace, serveApp } from './support'

const haveRedis = await redisAvailable()
const initial = Array.from({ length: 1000 }, (_, i) => ({ id: `t${i}`, title: `Todo number ${i}`, done: false }))
const app = defineZuno({ stores: { todos: { initial, ids: { '': 'id' }, merge: true } } })

async function serve(ns: string) {
  const { universe, url } = await serveApp(ns, app)
  const propose = async (baseVersion: number, patch: Patch, clientId: string, opId: number) => {
    const body = { storeKey: 'todos', baseVersion, epoch: universe.epoch, patch, clientId, opId }
    const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  return { universe, propose }
}

describe.skipIf(!haveRedis)('review: Redis deltas, what held', () => {
  it('a merged insert retried through another instance is a duplicate, applied once', async () => {
    const ns = namespace()
    const [a, b] = await Promise.all([serve(ns), serve(ns)])
    const other = newClientId()
    const alice = newClientId()
    expect((await a.propose(0, [[[{ id: 't3' }, 'done'], true]], other, 1)).status).toBe(200)
    const insert: Patch = [[[{ id: 'n1' }], { id: 'n1', title: 'new', done: false }, 't1']]
    // Merged on A over the write at version 1.
    expect((await a.propose(0, insert, alice, 1)).status).toBe(200)
    expect((await a.propose(2, [[[{ id: 't4' }, 'done'], true]], other, 2)).status).toBe(200)
    const retry = await b.propose(0, insert, alice, 1)
    expect(retry.status).toBe(200)
    await until(() => b.universe.store('todos').version === 3)
    for (const { universe } of [a, b]) expect(universe.store('todos').get().filter((todo) => todo.id === 'n1')).toHaveLength(1)
  })
})
