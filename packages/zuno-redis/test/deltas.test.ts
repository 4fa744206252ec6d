/**
 * Deltas on Redis: each write's patch travels in its Stream entry beside the state, so every
 * instance streams patches, keeps the patch history its merges and answers use, and replicas on
 * any instance follow by patches, also after Redis lost the namespace.
 */
import { EventSource } from 'eventsource'
import { describe, expect, it } from 'vitest'
import { applyPatch, connect, defineZuno, newClientId, type Patch } from 'zuno'
import { createUniverse } from 'zuno/server'
import { openRawStream } from '../../zuno/test/support/sseReader'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage as createPreActionsRedisStorage } from './fixtures/preActions/redisStorage'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, redisClient, serveApp } from './support'

const haveRedis = await redisAvailable()

interface Todo {
  id: string
  title: string
  done: boolean
}

const initial: Todo[] = Array.from({ length: 1000 }, (_, i) => ({ id: `t${i}`, title: `Todo number ${i}`, done: false }))
const app = defineZuno({ stores: { todos: { initial, ids: { '': 'id' }, merge: true } } })

const done = (id: string): Patch => [[[{ id }, 'done'], true]]
const renamed = (id: string, title: string): Patch => [[[{ id }, 'title'], title]]

/** One instance on the namespace `ns`, served over HTTP on 127.0.0.1, with a raw protocol client of its own. */
async function serve(ns: string) {
  const { universe, url } = await serveApp(ns, app)
  const client = { clientId: newClientId(), opId: 0 }
  /** A patch proposal of `todos` by this instance's client, its next op. */
  const propose = async (baseVersion: number, patch: Patch) => {
    const body = { storeKey: 'todos', baseVersion, epoch: universe.epoch, patch, clientId: client.clientId, opId: ++client.opId }
    const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  return { universe, url, propose, client }
}

/** Two instances on one fresh namespace. */
const pair = async () => {
  const ns = namespace()
  const [a, b] = await Promise.all([serve(ns), serve(ns)])
  return { ns, a, b }
}

/** A replica of `app` on `url` with the real `eventsource`; `frames` gets the name and data of every snapshot and state event it is sent. */
async function replicaOf(url: string) {
  const frames: Array<{ event: string; data: Record<string, unknown> }> = []
  class RecordingEventSource extends EventSource {
    constructor(target: string | URL, init?: { withCredentials?: boolean }) {
      super(target, init)
      for (const name of ['snapshot', 'state']) this.addEventListener(name, (event) => frames.push({ event: name, data: JSON.parse(event.data) }))
    }
  }
  const replica = connect({ url, EventSource: RecordingEventSource, tabs: false, app })
  cleanups.push(() => replica.close())
  await until(() => replica.status.get() === 'connected')
  return { replica, frames }
}

describe.skipIf(!haveRedis)('zuno-redis deltas', () => {
  it("streams another instance's patch proposal as a patch, without the state", async () => {
    const { a, b } = await pair()
    const stream = await openRawStream(`${b.url}/sse?stores=todos&patches=1`)
    cleanups.push(() => stream.close())
    expect((await stream.nextEvent()).event).toBe('snapshot')
    expect((await a.propose(0, done('t500'))).status).toBe(200)
    const frame = await stream.nextEvent()
    expect(frame.event).toBe('state')
    const data = JSON.parse(frame.data as string) as Record<string, unknown>
    expect(data).toEqual({ storeKey: 'todos', version: 1, patch: done('t500'), writer: expect.any(String), opId: 1 })
    expect(frame.data?.length).toBeLessThan(200)
  })

  it('merges disjoint patches on one base proposed through two instances, and answers an overlapping one 409 with the patches since its base', async () => {
    const { a, b } = await pair()
    expect((await a.propose(0, done('t1'))).status).toBe(200)
    // B has followed A's write, so the base is stale there too: a merge, not a compare that happens to pass.
    await until(() => b.universe.store('todos').version === 1)
    const merged = await b.propose(0, renamed('t2', 'Renamed'))
    expect(merged.status).toBe(200)
    expect(merged.body).toMatchObject({ version: 2, patches: [done('t1'), renamed('t2', 'Renamed')] })
    expect(merged.body.state).toBeUndefined()
    await until(() => a.universe.store('todos').version === 2)
    for (const { universe } of [a, b]) {
      const list = universe.store('todos').get()
      expect([list[1]?.done, list[2]?.title]).toEqual([true, 'Renamed'])
    }
    expect(a.universe.store('todos').get()).toEqual(b.universe.store('todos').get())

    const overlapping = await a.propose(0, [[[{ id: 't1' }, 'done'], false]])
    expect(overlapping.status).toBe(409)
    expect(overlapping.body).toMatchObject({ error: 'conflict', version: 2 })
    // The patches since the base, much shorter than a thousand todos; applied to it they make the current state.
    const patches = overlapping.body.patches as Patch[]
    expect(patches).toHaveLength(2)
    expect(patches.reduce<unknown>((state, patch) => applyPatch(state, patch), initial)).toEqual(a.universe.store('todos').get())
  })

  it("a replica on one instance follows the other's writes by patches and shows what it holds", async () => {
    const { a, b } = await pair()
    const { replica, frames } = await replicaOf(b.url)
    const todos = a.universe.store('todos')
    await todos.set((list) => list.map((todo) => (todo.id === 't1' ? { ...todo, done: true } : todo)))
    await todos.set((list) => [...list, { id: 'new', title: 'New', done: false }])
    await todos.set((list) => list.filter((todo) => todo.id !== 't0'))
    await until(() => replica.store('todos').version === 3)
    expect(replica.store('todos').get()).toEqual(todos.get())
    // One snapshot, then each write as its patch alone.
    expect(frames.map(({ event }) => event)).toEqual(['snapshot', 'state', 'state', 'state'])
    for (const { data } of frames.slice(1)) {
      expect(data.patch).toBeDefined()
      expect(data.state).toBeUndefined()
    }
  })

  it('entries with and without a patch mix: an instance of before deltas reads patched writes, and one of now its whole ones', async () => {
    const { ns, a } = await pair()
    const olderStorage = createPreActionsRedisStorage({ namespace: ns })
    const older = createUniverse({ app, storage: olderStorage })
    cleanups.push(async () => {
      await older.close()
      await olderStorage.close()
    })
    await older.ready
    const stream = await openRawStream(`${a.url}/sse?stores=todos&patches=1`)
    cleanups.push(() => stream.close())
    expect((await stream.nextEvent()).event).toBe('snapshot')

    expect((await a.propose(0, done('t1'))).status).toBe(200)
    await until(() => older.store('todos').version === 1)
    expect(older.store('todos').get()).toEqual(a.universe.store('todos').get())
    // The older storage drops the patch its universe hands it: its entry holds the state alone.
    await older.store('todos').set((list) => list.map((todo) => (todo.id === 't2' ? { ...todo, title: 'Renamed' } : todo)))
    await until(() => a.universe.store('todos').version === 2)
    expect(a.universe.store('todos').get()).toEqual(older.store('todos').get())
    const [patched, whole] = [await stream.nextEvent(), await stream.nextEvent()].map((frame) => JSON.parse(frame.data as string) as Record<string, unknown>)
    expect([patched?.patch, patched?.state]).toEqual([done('t1'), undefined])
    expect([whole?.patch, whole?.version]).toEqual([undefined, 2])
    expect(whole?.state).toEqual(older.store('todos').get())
  })

  it('after the namespace is wiped under both instances: one new epoch, a snapshot, then patches that converge', async () => {
    const { ns, a, b } = await pair()
    const { replica, frames } = await replicaOf(b.url)
    expect((await a.propose(0, done('t1'))).status).toBe(200)
    await until(() => replica.store('todos').version === 1)
    const old = a.universe.epoch
    const lastSnapshot = () => frames.map(({ event }) => event).lastIndexOf('snapshot')
    const before = lastSnapshot()

    const redis = redisClient()
    await redis.del(...(await redis.keys(`{${ns}}:*`)))
    await until(() => a.universe.epoch !== old && b.universe.epoch === a.universe.epoch, 10_000)
    // The wipe took the clients' records too: new clients, from opId 1.
    for (const { client } of [a, b]) Object.assign(client, { clientId: newClientId(), opId: 0 })
    // The replica is told to resync and takes the new epoch's snapshot.
    await until(() => lastSnapshot() > before, 10_000)

    // The new epoch starts from the declared state: t1 is not done there.
    expect((await a.propose(0, done('t3'))).status).toBe(200)
    await until(() => b.universe.store('todos').version === 1)
    expect((await b.propose(0, renamed('t4', 'Renamed'))).status).toBe(200)
    await until(() => a.universe.store('todos').version === 2 && replica.store('todos').version === 2, 10_000)
    const expected = [done('t3'), renamed('t4', 'Renamed')].reduce<unknown>((state, patch) => applyPatch(state, patch), initial)
    for (const state of [a.universe.store('todos').get(), b.universe.store('todos').get(), replica.store('todos').get()]) expect(state).toEqual(expected)

    // After the snapshot, both writes as patches.
    const after = frames.slice(lastSnapshot() + 1)
    expect(after.map(({ event, data }) => `${event} ${data.version} ${data.patch === undefined ? 'state' : 'patch'}`)).toEqual(['state 1 patch', 'state 2 patch'])
  }, 30_000)

  it('an instance started after the writes merges a patch made before them, from the patches its storage handed it', async () => {
    const ns = namespace()
    const a = await serve(ns)
    expect((await a.propose(0, done('t1'))).status).toBe(200)
    expect((await a.propose(1, done('t2'))).status).toBe(200)
    // Started now: it has seen none of those writes happen, only the recent events Redis keeps.
    const late = await serve(ns)
    const merged = await late.propose(0, renamed('t3', 'Three'))
    expect(merged.status).toBe(200)
    expect(merged.body).toMatchObject({ version: 3, patches: [done('t1'), done('t2'), renamed('t3', 'Three')] })
    await until(() => a.universe.store('todos').version === 3)
    expect(a.universe.store('todos').get().slice(1, 4)).toEqual([
      { id: 't1', title: 'Todo number 1', done: true },
      { id: 't2', title: 'Todo number 2', done: true },
      { id: 't3', title: 'Three', done: false },
    ])
  })

  it("an action's commit of two stores keeps both patches in its one entry, and another instance streams them as one commit", async () => {
    const ns = namespace()
    // Long enough that an insert's patch is shorter than the list.
    const shelf: Todo[] = Array.from({ length: 50 }, (_, i) => ({ id: `r${i}`, title: `Shelved ${i}`, done: true }))
    const moveApp = defineZuno({
      stores: { left: { initial, ids: { '': 'id' } }, right: { initial: shelf, ids: { '': 'id' } } },
      actions: {
        /** Moves the first todo from `left` to the end of `right`. */
        moveFirst: {
          run: (tx) => {
            const [first, ...rest] = tx.get('left')
            if (first === undefined) return
            tx.set('left', rest)
            tx.set('right', (right) => [...right, first])
          },
        },
      },
    })
    const a = await serveApp(ns, moveApp)
    const b = await serveApp(ns, moveApp)
    const stream = await openRawStream(`${b.url}/sse?patches=1`)
    cleanups.push(() => stream.close())
    expect((await stream.nextEvent()).event).toBe('snapshot')
    await a.universe.act('moveFirst')
    const [entry] = await redisClient().xrange(`{${ns}}:log`, '-', '+')
    const fields = entry?.[1] ?? []
    const p = fields[fields.indexOf('p') + 1] as string
    expect(JSON.parse(p)).toEqual([[[[{ id: 't0' }]]], [[[{ id: 't0' }], initial[0], 'r49']]])
    const event = await stream.nextEvent()
    expect(event.event).toBe('commit')
    expect(JSON.parse(event.data as string).changes).toEqual([
      { storeKey: 'left', version: 1, patch: [[[{ id: 't0' }]]] },
      { storeKey: 'right', version: 1, patch: [[[{ id: 't0' }], initial[0], 'r49']] },
    ])
    await until(() => b.universe.store('right').version === 1)
    expect([b.universe.store('left').get().length, b.universe.store('right').get()]).toEqual([999, [...shelf, initial[0]]])
  })
})
