/**
 * Deleting stores on Redis: the deletion is a Stream entry every instance streams, the tombstone
 * (its version, no state) survives a restart of the instances, a store is created again from the
 * deletion's version, and an action deletes one store while it writes another, as one change.
 */
import { describe, expect, it } from 'vitest'
import { defineZuno, newClientId } from 'zuno'
import { createUniverse } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, openUniverse, serveApp } from './support'

const haveRedis = await redisAvailable()

describe.skipIf(!haveRedis)('deletion on Redis', () => {
  it('streams a deletion to every instance, keeps its tombstone across a restart, and creates the store again from there', async () => {
    const ns = namespace()
    const writer = openUniverse(ns, {}, { allowStore: () => true })
    const reader = openUniverse(ns, {}, { allowStore: () => true })
    await Promise.all([writer.ready, reader.ready])
    await writer.store('doc', 'a').set('b')
    await writer.delete('doc')
    // Read lazily: a store is in memory once loaded, and kept current from the Stream.
    await reader.load(['doc'])
    await until(() => reader.snapshot(['doc']).stores.doc?.version === 2)
    expect(reader.snapshot(['doc']).stores.doc).toEqual({ version: 2, deleted: true })
    expect((await reader.hold()).snapshot().stores.doc).toEqual({ version: 2, deleted: true })

    // A fresh instance loads the namespace: the tombstone is there, and the next write is version 3.
    const restarted = openUniverse(ns, {}, { allowStore: () => true })
    await restarted.ready
    await restarted.load(['doc'])
    expect(restarted.snapshot(['doc']).stores.doc).toEqual({ version: 2, deleted: true })
    expect(await restarted.store('doc').set('again')).toBe(3)
    await until(() => reader.store('doc').get() === 'again')
    // Created again, it keeps its latest deletion: snapshots say it, and an op made before it is told so.
    const later = openUniverse(ns, {}, { allowStore: () => true })
    await later.ready
    await later.load(['doc'])
    expect(later.snapshot(['doc']).stores.doc).toEqual({ version: 3, state: 'again', deletedAt: 2 })
    const answer = await later.propose({ storeKey: 'doc', baseVersion: 1, state: 'stale', epoch: later.epoch, clientId: newClientId(), opId: 1 }, { principal: '' })
    expect(answer).toMatchObject({ type: 'conflict', version: 3, deletedAt: 2 })
  })

  it('commits an action that deletes one store and writes another as one Stream entry', async () => {
    const app = defineZuno({
      stores: { draft: { initial: '' }, published: { initial: [] as string[] } },
      actions: {
        publish: {
          run: (tx) => {
            tx.set('published', (list) => [...list, tx.get('draft')])
            tx.delete('draft')
          },
        },
      },
    })
    const ns = namespace()
    const storage = createRedisStorage({ namespace: ns })
    const universe = createUniverse({ app, storage })
    const other = openUniverse(ns, {}, { allowStore: () => true })
    cleanups.push(async () => {
      await universe.close()
      await storage.close()
    })
    await Promise.all([universe.ready, other.ready])
    await universe.store('draft').set('hello')
    await universe.act('publish')
    await other.load(['draft', 'published'])
    await until(() => other.snapshot(['draft']).stores.draft?.version === 2)
    expect(other.snapshot(['draft', 'published']).stores).toEqual({ draft: { version: 2, deleted: true }, published: { version: 1, state: ['hello'] } })
  })
})

describe.skipIf(!haveRedis)('an action right after an action that deleted the store, on Redis', () => {
  it('reads the deleted store as its initial state, not as undefined, before this instance’s follow brings the deletion', async () => {
    const app = defineZuno({
      stores: { 'doc:{id}': { initial: { title: '' } } },
      actions: {
        remove: { run: (tx) => tx.delete('doc:1') },
        exclaim: { run: (tx) => tx.set('doc:1', (doc) => ({ title: `${doc.title}!` })) },
      },
    })
    const ns = namespace()
    const { universe, url } = await serveApp(ns, app)
    const post = (action: string, clientId: string) =>
      fetch(`${url}/sync`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action, epoch: universe.epoch, clientId, opId: 1 }),
      }).then(async (response) => ({ status: response.status, body: await response.json() }))
    for (let round = 0; round < 20; round++) {
      await universe.store('doc:1').set({ title: 'Plan' })
      // Both at once: the second runs as soon as the first has committed, before the follow applied it.
      const [removed, exclaimed] = await Promise.all([post('remove', newClientId()), post('exclaim', newClientId())])
      expect(removed.status).toBe(200)
      expect(exclaimed.body, JSON.stringify(exclaimed.body)).toMatchObject({ ok: true })
    }
  })
})
