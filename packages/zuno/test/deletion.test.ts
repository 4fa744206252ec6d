/**
 * Deleting a store: a logged change (its version moves on) that every replica applies, a
 * tombstone in snapshots, a store created again from the deletion's version, and ops made before
 * a replica knew of the deletion refused rather than bringing the store back. Real servers on
 * 127.0.0.1, the real `eventsource` client; the file storage across restarts.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, defineZuno, type ReplicaOptions, type ReplicaUniverse } from '../src/index'
import { newClientId } from '../src/id'
import { createUniverse } from '../src/server/index'
import { freshDir, openFile, removeDirs } from './support/fileUniverse'
import { memoryOutbox } from './support/memoryOutbox'
import { openRawStream } from './support/sseReader'
import { until } from './support/until'
import { serveUniverse, startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  removeDirs()
})

function connectApp(url: string) {
  const replica = connect({ url, EventSource, app })
  cleanups.push(() => replica.close())
  return replica
}

function replicaOf(url: string, options: Partial<ReplicaOptions> = {}): ReplicaUniverse {
  const replica = connect({ url, EventSource, ...options })
  cleanups.push(() => replica.close())
  return replica
}

/** A Standard Schema of a string: an action's argument. */
const aString: StandardSchemaV1<unknown, string> = {
  '~standard': { version: 1, vendor: 'test', validate: (value) => (typeof value === 'string' ? { value } : { issues: [{ message: 'a string' }] }) },
}

const app = defineZuno({
  stores: { 'doc:{id}': { initial: { title: '' } } },
  actions: {
    removeDoc: {
      args: aString,
      run: (tx, id) => {
        tx.delete(`doc:${id}`)
        // Read after the deletion: the store's initial state.
        if (tx.get(`doc:${id}`).title !== '') throw new Error('a deleted store reads as its initial state')
      },
    },
  },
})

describe('deleting a store', () => {
  it('streams the deletion, lists a tombstone in snapshots, and goes on from its version when created again', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('doc', 'a').set('b')
    await zuno.universe.store('doc').set('c')
    const stream = await openRawStream(`${zuno.url}/sse?stores=doc`)
    cleanups.push(() => stream.close())
    await stream.nextEvent()
    expect(await zuno.universe.delete('doc')).toBe(3)
    const deletion = await stream.nextEvent()
    expect(JSON.parse(deletion.data as string)).toMatchObject({ storeKey: 'doc', version: 3, deleted: true })
    expect(JSON.parse(deletion.data as string)).not.toHaveProperty('state')
    // Snapshots, named or not, and GET /state list the tombstone.
    for (const query of ['stores=doc', '']) {
      const state = (await (await fetch(`${zuno.url}/state?${query}`)).json()) as { stores: Record<string, unknown> }
      expect(state.stores.doc).toEqual({ version: 3, deleted: true })
    }
    // Deleting what is deleted already changes nothing.
    expect(await zuno.universe.delete('doc')).toBe(3)
    expect(await zuno.universe.delete('never-written')).toBe(0)
    // Created again: version 4, never back to 1.
    expect(await zuno.universe.store('doc').set('again')).toBe(4)
    const created = JSON.parse((await stream.nextEvent()).data as string)
    expect([created.version, created.state]).toEqual([4, 'again'])
  })

  it('vanishes from every replica (it shows its initial state), and a replica that writes it afterwards creates it again', async () => {
    const universe = createUniverse({ app })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await universe.store('doc:1').set({ title: 'Plan' })
    const a = connectApp(served.url)
    const b = connectApp(served.url)
    await until(() => a.store('doc:1').get().title === 'Plan' && b.store('doc:1').get().title === 'Plan')
    await universe.delete('doc:1')
    await until(() => a.store('doc:1').get().title === '' && b.store('doc:1').get().title === '')
    expect([a.store('doc:1').version, b.store('doc:1').version]).toEqual([2, 2])
    expect(await a.store('doc:1').set({ title: 'Plan B' })).toBe(3)
    await until(() => b.store('doc:1').get().title === 'Plan B')
  })

  it('refuses an op made before the replica knew of the deletion, with store_deleted, and the store stays deleted', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('doc', 0).set(1)
    // A replica that follows no store: it learns of the deletion only from the answer to its op.
    const replica = replicaOf(zuno.url, { stores: [] })
    expect(await replica.store('doc', 0).set(2)).toBe(2)
    await zuno.universe.delete('doc')
    const errors: string[] = []
    const refused = replica.store<number>('doc').set((n) => n + 1)
    await expect(refused).rejects.toMatchObject({ code: 'store_deleted' })
    expect(errors).toEqual([])
    const state = (await (await fetch(`${zuno.url}/state?stores=doc`)).json()) as { stores: Record<string, unknown> }
    expect(state.stores.doc).toEqual({ version: 3, deleted: true })
    // Known deleted now, a new write creates it again, on purpose.
    expect(await replica.store('doc').set(10)).toBe(4)
  })

  it('refuses an op queued before the stream brought the deletion, rather than proposing it on the tombstone', async () => {
    const universe = createUniverse({ app })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await universe.store('doc:1').set({ title: 'Plan' })
    // Holds the replica's first proposal until released, so the next op waits in the queue.
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    let first = true
    const replica = connect({
      url: served.url,
      EventSource,
      app,
      fetch: async (input, init) => {
        if (first) {
          first = false
          await held
        }
        return fetch(input, init)
      },
    })
    cleanups.push(() => replica.close())
    await until(() => replica.store('doc:1').get().title === 'Plan')
    const inFlight = replica.store('doc:2').set({ title: 'Other' })
    // Made on version 1, while the replica shows the document.
    const stale = replica.store('doc:1').set((doc) => ({ title: `${doc.title}, revised` }))
    stale.catch(() => {})
    await universe.delete('doc:1')
    await until(() => replica.store('doc:1').version === 2)
    release()
    await inFlight
    await expect(stale).rejects.toMatchObject({ code: 'store_deleted' })
    expect(universe.store('doc:1').version).toBe(2)
  })

  it('refuses an op made before a deletion even when the store was created again since', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('doc', 0).set(1)
    // A replica that follows no store: it learns of the deletion only from the answer to its op.
    const replica = replicaOf(zuno.url, { stores: [] })
    expect(await replica.store('doc', 0).set(2)).toBe(2)
    await zuno.universe.delete('doc')
    expect(await zuno.universe.store<number>('doc').set(100)).toBe(4)
    await expect(replica.store<number>('doc').set((n) => n + 1)).rejects.toMatchObject({ code: 'store_deleted' })
    expect(zuno.universe.store('doc').get()).toBe(100)
  })

  it('lets a replica create a deleted declared store again, whatever allowStore says of other stores', async () => {
    const universe = createUniverse({ stores: { doc: 0 }, allowStore: () => false })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    const replica = replicaOf(served.url)
    expect(await replica.store<number>('doc', 0).set(1)).toBe(1)
    await universe.delete('doc')
    await until(() => replica.store('doc').version === 2)
    expect(await replica.store<number>('doc').set((n) => n + 1)).toBe(3)
    expect(universe.store('doc').get()).toBe(1)
  })

  it('deletes in an action, shown at once on the replica that runs it and streamed to the others', async () => {
    const universe = createUniverse({ app })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await universe.store('doc:7').set({ title: 'Seven' })
    const a = connectApp(served.url)
    const b = connectApp(served.url)
    await until(() => b.store('doc:7').get().title === 'Seven' && a.store('doc:7').get().title === 'Seven')
    const done = a.act('removeDoc', '7')
    // At once, before the server answers.
    expect(a.store('doc:7').get().title).toBe('')
    await done
    await until(() => b.store('doc:7').get().title === '')
    expect(b.store('doc:7').version).toBe(2)
  })

  it('counts a deleted store out of maxStores, and back in when created again', async () => {
    const universe = createUniverse({ maxStores: 1, allowStore: () => true })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    const replica = replicaOf(served.url, { stores: [] })
    expect(await replica.store('one', 0).set(1)).toBe(1)
    await expect(replica.store('two', 0).set(1)).rejects.toMatchObject({ code: 'store_limit' })
    await universe.delete('one')
    expect(await replica.store('three', 0).set(1)).toBe(1)
  })

  it('keeps a tombstone across restarts of the file storage, in its log and in its snapshot', async () => {
    const dir = freshDir()
    for (const snapshotEvery of [1_000, 1]) {
      const first = await openFile(dir, { snapshotEvery })
      await first.universe.store(`doc${snapshotEvery}`, 0).set(1)
      await first.universe.delete(`doc${snapshotEvery}`)
      await first.close()
      const second = await openFile(dir, { snapshotEvery })
      const key = `doc${snapshotEvery}`
      expect(second.universe.snapshot([key]).stores[key]).toEqual({ version: 2, deleted: true })
      expect(await second.universe.store(key).set(5)).toBe(3)
      await second.close()
      // And its latest deletion, once created again: an op made before it is still told so after a restart.
      const third = await openFile(dir, { snapshotEvery })
      expect(third.universe.snapshot([key]).stores[key]).toEqual({ version: 3, state: 5, deletedAt: 2 })
      const answer = await third.universe.propose({ storeKey: key, baseVersion: 1, state: 9, epoch: third.universe.epoch, clientId: newClientId(), opId: 1 }, { principal: '' })
      expect(answer).toMatchObject({ type: 'conflict', version: 3, deletedAt: 2 })
      await third.close()
    }
  })
})

describe('deleting a store: ops restored from the outbox after a reload', () => {
  it('refuses a restored op made before the deletion, rather than bringing the store back', async () => {
    const universe = createUniverse({ app })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await universe.store('doc:1').set({ title: 'One' })
    await universe.store('doc:2').set({ title: 'Two' })
    const { outbox, entries } = memoryOutbox()
    // The first session goes offline after its first op: its next op goes (and is in doubt), the last waits, unsent.
    let online = true
    const offline: typeof fetch = (input, init) => (init?.method === 'POST' && !online ? Promise.reject(new TypeError('offline')) : fetch(input, init))
    const first = connect({ url: served.url, EventSource, app, tabs: false, outbox, fetch: offline })
    cleanups.push(() => first.close())
    await until(() => first.store('doc:1').version === 1 && first.store('doc:2').version === 1)
    await first.store('doc:3').set({ title: 'Three' })
    online = false
    first.store('doc:1').set({ title: 'One, edited offline' }).catch(() => {})
    first.store('doc:2').set({ title: 'Two, edited offline' }).catch(() => {})
    await until(() => entries.size === 2 && [...entries.values()].some((entry) => 'storeKey' in entry && entry.sentOn !== undefined))
    first.close()
    // Meanwhile both documents are deleted; the first is created again by someone else.
    await universe.delete('doc:1')
    await universe.delete('doc:2')
    await universe.store('doc:1').set({ title: 'A new one' })
    const errors: string[] = []
    const second = connect({ url: served.url, EventSource, app, tabs: false, outbox, onError: (error) => errors.push(error.code) })
    cleanups.push(() => second.close())
    await until(() => second.pending.get() === 0 && entries.size === 0)
    // Neither edit, made before the deletions, reaches the stores.
    expect(universe.store('doc:1').get()).toEqual({ title: 'A new one' })
    expect(universe.snapshot(['doc:2']).stores['doc:2']).toEqual({ version: 2, deleted: true })
    expect(errors).toEqual(['store_deleted', 'store_deleted'])
    expect(second.store('doc:2').get()).toEqual({ title: '' })
  })
})

describe('a patch that leaves a store without a state', () => {
  it('is refused (an empty patch of a deleted store that has no initial state), not committed as a store without a state', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('x', 0).set(1)
    await zuno.universe.delete('x')
    const post = async (storeKey: string, baseVersion: number) => {
      const response = await fetch(`${zuno.url}/sync`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ storeKey, baseVersion, epoch: zuno.universe.epoch, clientId: newClientId(), opId: 1, patch: [] }),
      })
      return { status: response.status, body: (await response.json()) as { error?: string } }
    }
    // Nothing to patch: on Redis such a commit reads back as a deletion, here as a store with no state.
    for (const [storeKey, baseVersion] of [['x', 2], ['never', 0]] as const) {
      expect(await post(storeKey, baseVersion)).toMatchObject({ status: 409, body: { error: 'patch_mismatch' } })
    }
    expect(zuno.universe.snapshot(['x', 'never']).stores).toEqual({ x: { version: 2, deleted: true } })
  })
})
