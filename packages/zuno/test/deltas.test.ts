/**
 * Deltas over real HTTP on 127.0.0.1, with the real `eventsource` client: `state` events carry the
 * patch from the previous version when it is shorter, proposals go as patches, answers and 409s
 * carry the patches since the proposal's base, stores that merge accept disjoint patches on a stale
 * base, and a replica that cannot apply a patch starts over from a snapshot.
 */
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, defineZuno, type Patch, type ReplicaOptions } from '../src/index'
import { createNodeHandler, createUniverse, type NodeHandlerOptions, type UniverseOptions } from '../src/server/index'
import { newClientId } from '../src/id'
import { openRawStream } from './support/sseReader'
import { until } from './support/until'

interface Todo {
  id: string
  title: string
  done: boolean
}

const todos = (count: number): Todo[] => Array.from({ length: count }, (_, i) => ({ id: `t${i}`, title: `Todo number ${i}`, done: false }))

const app = defineZuno({
  stores: {
    todos: { initial: todos(10_000), ids: { '': 'id' }, merge: true },
    board: { initial: { title: 'Board', lists: [] as Array<{ id: string; cards: Todo[] }> }, ids: { '/lists': 'id', '/lists/*/cards': 'id' }, merge: true },
    plain: { initial: { a: 1, b: 2, list: [1, 2, 3] } },
    counter: { initial: 0 },
  },
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A server of `app`; `posts` collects the raw bodies of `POST /sync`. */
async function serve(options: Partial<UniverseOptions> = {}, handlerOptions: NodeHandlerOptions = {}) {
  const universe = createUniverse({ app, ...options })
  await universe.ready
  const handler = createNodeHandler(universe, handlerOptions)
  const posts: string[] = []
  const server: Server = createServer((req: IncomingMessage, res) => {
    if (req.method === 'POST') {
      let body = ''
      req.on('data', (chunk: Buffer) => (body += chunk.toString()))
      req.on('end', () => posts.push(body))
    }
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  cleanups.push(async () => {
    handler.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await universe.close()
  })
  const url = `http://127.0.0.1:${port}/zuno`
  const client = { clientId: newClientId(), opId: 0 }
  const post = async (body: Record<string, unknown>) => {
    const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  /** A patch proposal by this test's client (its next op unless `opId` is given). */
  const propose = (storeKey: string, baseVersion: number, patch: Patch, ids = { clientId: client.clientId, opId: ++client.opId }) =>
    post({ storeKey, baseVersion, epoch: universe.epoch, patch, ...ids })
  return { universe, url, posts, post, propose, client }
}

async function replicaOf(url: string, options: Partial<Omit<ReplicaOptions, 'schemas' | 'initial' | 'actions'>> = {}) {
  const replica = connect({ url, EventSource, tabs: false, app, ...options })
  cleanups.push(() => replica.close())
  await until(() => replica.status.get() === 'connected')
  return replica
}

const toggle = (id: string) => (list: Todo[]) => list.map((todo) => (todo.id === id ? { ...todo, done: !todo.done } : todo))

describe('deltas down', () => {
  it('streams a one-item edit of a 10,000-item list as a patch, a thousand times shorter than the state', async () => {
    const { universe, url, propose } = await serve()
    const stream = await openRawStream(`${url}/sse?stores=todos&patches=1`)
    cleanups.push(() => stream.close())
    const snapshot = await stream.nextEvent()
    expect(snapshot.event).toBe('snapshot')
    const answer = await propose('todos', 0, [[[{ id: 't5000' }, 'done'], true]])
    expect(answer.status).toBe(200)
    const frame = await stream.nextEvent()
    expect(frame.event).toBe('state')
    const data = JSON.parse(frame.data as string) as { version: number; patch?: Patch; state?: unknown }
    expect(data).toMatchObject({ storeKey: 'todos', version: 1, patch: [[[{ id: 't5000' }, 'done'], true]] })
    expect(data.state).toBeUndefined()
    const stateBytes = JSON.stringify(universe.store('todos').get()).length
    expect(stateBytes / (frame.data as string).length).toBeGreaterThan(1000)
    // The answer says the state by the patch too.
    expect(answer.body).toEqual({ ok: true, storeKey: 'todos', version: 1, patches: [[[[{ id: 't5000' }, 'done'], true]]] })
  })

  it('streams the whole state when it is shorter than the patch', async () => {
    const { url, propose } = await serve()
    const stream = await openRawStream(`${url}/sse?stores=counter`)
    cleanups.push(() => stream.close())
    await stream.nextEvent()
    expect((await propose('counter', 0, [[[], 7]])).status).toBe(200)
    const data = JSON.parse((await stream.nextEvent()).data as string) as Record<string, unknown>
    expect(data).toMatchObject({ storeKey: 'counter', version: 1, state: 7 })
    expect(data.patch).toBeUndefined()
  })

  it('a replica applies the patches it is streamed and shows what the server holds', async () => {
    const { universe, url } = await serve()
    const replica = await replicaOf(url)
    const store = replica.store('todos')
    await universe.store('todos').set(toggle('t1'))
    await universe.store('todos').set((list) => [...list, { id: 'new', title: 'New', done: false }])
    await universe.store('todos').set((list) => list.filter((todo) => todo.id !== 't0'))
    await until(() => store.version === 3)
    expect(store.get()).toEqual(universe.store('todos').get())
  })
})

describe('deltas up', () => {
  it('a replica proposes a one-item edit as a patch, not as the whole list', async () => {
    const { universe, url, posts } = await serve()
    const replica = await replicaOf(url)
    const version = await replica.store('todos').set(toggle('t42'))
    expect(version).toBe(1)
    const sent = JSON.parse(posts.at(-1) as string) as Record<string, unknown>
    expect(sent.patch).toEqual([[[{ id: 't42' }, 'done'], true]])
    expect(sent.state).toBeUndefined()
    expect((posts.at(-1) as string).length).toBeLessThan(300)
    expect(universe.store('todos').get()[42]).toEqual({ id: 't42', title: 'Todo number 42', done: true })
  })

  it('a replica sends the whole state when it is shorter', async () => {
    const { universe, url, posts } = await serve()
    const replica = await replicaOf(url)
    await replica.store('counter').set(5)
    const sent = JSON.parse(posts.at(-1) as string) as Record<string, unknown>
    expect([sent.state, sent.patch]).toEqual([5, undefined])
    expect(universe.store('counter').get()).toBe(5)
  })

  it('answers 409 patch_mismatch to a patch that does not apply, records nothing, and the replica sends the op whole', async () => {
    const { universe, propose } = await serve()
    const missing = await propose('todos', 0, [[[{ id: 'nope' }, 'done'], true]])
    expect(missing.status).toBe(409)
    expect(missing.body.error).toBe('patch_mismatch')
    // The id is still free: the same op goes again, whole.
    expect(universe.store('todos').version).toBe(0)
  })

  it('keeps a state made by a patch frozen throughout: what it copied, what it set, what it shares', async () => {
    const { universe, propose } = await serve()
    const card = { id: 'c1', title: 'Card', done: false, tags: ['a'] }
    const patch: Patch = [
      [['title'], { text: 'Renamed' }],
      [['lists', { id: 'l1' }], { id: 'l1', cards: [card] }, null],
      [['lists', { id: 'l1' }, 'cards', { id: 'c1' }, 'done'], true],
    ]
    expect((await propose('board', 0, patch)).status).toBe(200)
    const unfrozen: string[] = []
    const visit = (value: unknown, where: string) => {
      if (typeof value !== 'object' || value === null) return
      if (!Object.isFrozen(value)) unfrozen.push(where)
      for (const [key, child] of Object.entries(value)) visit(child, `${where}/${key}`)
    }
    visit(universe.store('board').get(), '')
    expect(unfrozen).toEqual([])
    expect(universe.store('board').get()).toEqual({ title: { text: 'Renamed' }, lists: [{ id: 'l1', cards: [{ ...card, done: true }] }] })
  })
})

describe('conflicts and merges', () => {
  it('accepts two edits of two items on one base, and refuses the second edit of one item with the patches since its base', async () => {
    const { universe, propose } = await serve()
    expect((await propose('todos', 0, [[[{ id: 't1' }, 'done'], true]])).status).toBe(200)
    // Stale base, another item: merged.
    const merged = await propose('todos', 0, [[[{ id: 't2' }, 'title'], 'Renamed']])
    expect(merged.status).toBe(200)
    expect(merged.body).toMatchObject({ version: 2, patches: [[[[{ id: 't1' }, 'done'], true]], [[[{ id: 't2' }, 'title'], 'Renamed']]] })
    const list = universe.store('todos').get()
    expect([list[1]?.done, list[2]?.title]).toEqual([true, 'Renamed'])
    // Stale base, the same item: 409 with the patches since its base.
    const overlapping = await propose('todos', 0, [[[{ id: 't1' }, 'done'], false]])
    expect(overlapping.status).toBe(409)
    expect(overlapping.body).toMatchObject({ error: 'conflict', version: 2, patches: [[[[{ id: 't1' }, 'done'], true]], [[[{ id: 't2' }, 'title'], 'Renamed']]] })
    expect(overlapping.body.state).toBeUndefined()
  })

  it('inserts on one base both land, each where it was put', async () => {
    const { universe, propose } = await serve()
    const first = { id: 'a', title: 'A', done: false }
    const second = { id: 'b', title: 'B', done: false }
    expect((await propose('todos', 0, [[[{ id: 'a' }], first, 't0']])).status).toBe(200)
    expect((await propose('todos', 0, [[[{ id: 'b' }], second, null]])).status).toBe(200)
    const list = universe.store('todos').get()
    expect(list.slice(0, 3).map((todo) => todo.id)).toEqual(['b', 't0', 'a'])
    expect(list).toHaveLength(10_002)
  })

  it('a store that does not merge answers 409 to a stale patch, even a disjoint one', async () => {
    const { propose } = await serve()
    expect((await propose('plain', 0, [[['a'], 10]])).status).toBe(200)
    const stale = await propose('plain', 0, [[['b'], 20]])
    expect(stale.status).toBe(409)
  })

  it('edits in one array without ids are one path: two of them conflict', async () => {
    const { propose } = await serve({ merge: ['plain'] })
    expect((await propose('plain', 0, [[['list', 0], 10]])).status).toBe(200)
    expect((await propose('plain', 0, [[['a'], 5]])).status).toBe(200)
    expect((await propose('plain', 0, [[['list', 2], 30]])).status).toBe(409)
  })

  it('with patchHistory 1, merges over one version only, and answers 409 with the state past it', async () => {
    const { propose, client } = await serve({ patchHistory: 1 })
    expect((await propose('todos', 0, [[[{ id: 't1' }, 'done'], true]])).status).toBe(200)
    expect((await propose('todos', 0, [[[{ id: 't2' }, 'done'], true]])).status).toBe(200)
    // Two versions back: the patch of version 1 is no longer kept.
    const twoBack = await propose('todos', 0, [[[{ id: 't3' }, 'done'], true]])
    expect(twoBack.status).toBe(409)
    expect(twoBack.body.patches).toBeUndefined()
    expect((twoBack.body.state as Todo[])[2]?.done).toBe(true)
    // One version back: merged (the same op, whose id the 409 left free).
    const oneBack = await propose('todos', 1, [[[{ id: 't3' }, 'done'], true]], { clientId: client.clientId, opId: 3 })
    expect(oneBack.status).toBe(200)
  })

  it('nested id paths: edits of two cards of one list merge', async () => {
    const { universe, propose } = await serve()
    const list = { id: 'l1', cards: [{ id: 'c1', title: 'one', done: false }, { id: 'c2', title: 'two', done: false }] }
    expect((await propose('board', 0, [[['lists', { id: 'l1' }], list, null]])).status).toBe(200)
    expect((await propose('board', 1, [[['lists', { id: 'l1' }, 'cards', { id: 'c1' }, 'done'], true]])).status).toBe(200)
    expect((await propose('board', 1, [[['lists', { id: 'l1' }, 'cards', { id: 'c2' }, 'title'], 'TWO']])).status).toBe(200)
    expect(universe.store('board').get().lists[0]?.cards).toEqual([
      { id: 'c1', title: 'one', done: true },
      { id: 'c2', title: 'TWO', done: false },
    ])
  })

  it('two replicas ticking two todos at once both land without a conflict', async () => {
    const { universe, url } = await serve()
    const conflicts: unknown[] = []
    const one = await replicaOf(url, { onConflict: (info) => conflicts.push(info) })
    const two = await replicaOf(url, { onConflict: (info) => conflicts.push(info) })
    await Promise.all([one.store('todos').set(toggle('t10')), two.store('todos').set(toggle('t20'))])
    await until(() => one.store('todos').version === 2 && two.store('todos').version === 2)
    expect(conflicts).toEqual([])
    const list = universe.store('todos').get()
    expect([list[10]?.done, list[20]?.done]).toEqual([true, true])
    expect(one.store('todos').get()).toEqual(list)
    expect(two.store('todos').get()).toEqual(list)
  })
})

describe('replicas that miss a patch', () => {
  /**
   * A pass-through proxy whose streams the test can cut, and whose new streams it can hold back,
   * so the server moves on while a replica is away; `resumedFrom` lists each stream's Last-Event-ID.
   */
  async function cuttableProxy(target: string) {
    const { port: targetPort } = new URL(target)
    const open = new Set<ServerResponse>()
    const resumedFrom: Array<string | undefined> = []
    let held: Array<() => void> | undefined
    const server = createServer((req, res) => {
      const forward = () => {
        if (req.url?.includes('/sse')) {
          const query = new URL(req.url, 'http://proxy').searchParams.get('lastEventId') ?? undefined
          resumedFrom.push((req.headers['last-event-id'] as string | undefined) ?? query)
          open.add(res)
          res.on('close', () => open.delete(res))
        }
        const upstream = request({ host: '127.0.0.1', port: Number(targetPort), method: req.method, path: req.url, headers: req.headers }, (reply) => {
          res.writeHead(reply.statusCode ?? 502, reply.headers)
          reply.pipe(res)
        })
        upstream.on('error', () => res.destroy())
        res.on('close', () => upstream.destroy())
        req.pipe(upstream)
      }
      if (held !== undefined && req.url?.includes('/sse')) held.push(forward)
      else forward()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    })
    return {
      url: `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno`,
      resumedFrom,
      /** Drops every open stream mid-flight and holds back the reconnects until `release`. */
      cut() {
        held = []
        for (const res of open) res.destroy()
      },
      release() {
        const waiting = held ?? []
        held = undefined
        for (const forward of waiting) forward()
      },
    }
  }

  it.each([
    ['within the retention, it resumes and applies the patches it missed', 100, 'resumed'],
    ['past the retention, it starts over from a snapshot', 1, 'snapshot'],
  ])('a replica whose stream is cut mid-stream converges: %s', async (_, retention, how) => {
    const { universe, url } = await serve({ retention })
    const proxy = await cuttableProxy(url)
    const replica = await replicaOf(proxy.url)
    const store = replica.store('todos')
    await universe.store('todos').set(toggle('t1'))
    await until(() => store.version === 1)
    proxy.cut()
    await until(() => replica.status.get() !== 'connected')
    await universe.store('todos').set(toggle('t2'))
    await universe.store('todos').set((list) => [{ id: 'first', title: 'First', done: false }, ...list])
    await universe.store('todos').set(toggle('t3'))
    const stream = await openRawStream(`${url}/sse?stores=todos&patches=1`, { 'last-event-id': `${universe.epoch}-1` })
    cleanups.push(() => stream.close())
    // What the replica will be sent: the patches after its last id, or a snapshot.
    expect((await stream.nextEvent()).event).toBe(how === 'resumed' ? 'state' : 'snapshot')
    proxy.release()
    await until(() => store.version === 4)
    expect(store.get()).toEqual(universe.store('todos').get())
    expect(proxy.resumedFrom.at(-1)).toBe(`${universe.epoch}-1`)
  })
})

describe('hostile patches', () => {
  it.each([
    ['not an array', { a: 1 }],
    ['an op that is not an array', [5]],
    ['an empty op', [[]]],
    ['a path that is not an array', [['a', 1]]],
    ['a step that is a boolean', [[[true], 1]]],
    ['a negative index', [[[-1], 1]]],
    ['an id step with two keys', [[[{ a: 1, b: 2 }], 1]]],
    ['an id step with an object id', [[[{ a: {} }], 1]]],
    ['an insert after an object', [[[{ id: 'x' }], 1, {}]]],
    ['an insert into something that is not an id-keyed array', [[['a'], 1, null]]],
    ['four elements', [[['a'], 1, null, 2]]],
  ])('answers 400 invalid_patch to %s', async (_, patch) => {
    const { propose } = await serve()
    const answer = await propose('plain', 0, patch as unknown as Patch)
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_patch'])
  })

  it('answers 400 invalid_patch to a patch whose path and value together nest past the depth limit, though the body does not', async () => {
    const { propose } = await serve()
    let value: unknown = 1
    for (let i = 0; i < 30; i++) value = { a: value }
    const deep = await propose('plain', 0, [[Array.from({ length: 40 }, () => 'a'), value]])
    expect([deep.status, deep.body.error]).toEqual([400, 'invalid_patch'])
    // The same value at a short path builds a state within the limit.
    expect((await propose('plain', 0, [[['a'], value]], { clientId: newClientId(), opId: 1 })).status).toBe(200)
  })

  it('answers 400 invalid_body to a body with a state and a patch', async () => {
    const { universe, post } = await serve()
    const answer = await post({ storeKey: 'plain', baseVersion: 0, epoch: universe.epoch, state: 1, patch: [], clientId: newClientId(), opId: 1 })
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_body'])
  })

  it('answers 409 patch_mismatch to a patch that steps where nothing is, and keeps __proto__ a plain key', async () => {
    const { universe, propose } = await serve()
    // Nothing is recorded: every attempt is op 1.
    const ids = { clientId: newClientId(), opId: 1 }
    for (const patch of [[[['missing', 'deeper'], 1]], [[['a', 'b'], 1]], [[['list', 9], 1]], [[[], 1], [['x'], 2]], [[[]]]] as Patch[]) {
      const answer = await propose('plain', 0, patch, ids)
      expect([answer.status, answer.body.error]).toEqual([409, 'patch_mismatch'])
    }
    const polluting = await propose('plain', 0, [[['__proto__'], { polluted: true }]], ids)
    expect(polluting.status).toBe(200)
    const state = universe.store('plain').get() as Record<string, unknown>
    expect(Object.getPrototypeOf(state)).toBe(Object.prototype)
    expect(Object.hasOwn(state, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
