/**
 * Deltas where a review of issue #16 tried to break them: hostile paths, readers who may only write,
 * cleared fields, items named by another key, patches that say more than their change, restored ops,
 * and retries whose answers were lost.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, defineZuno, type Patch } from '../src/index'
import { createUniverse, type NodeHandlerOptions, type UniverseOptions } from '../src/server/index'
import { newClientId } from '../src/id'
import { openRawStream } from './support/sseReader'
import { memoryOutbox } from './support/memoryOutbox'
import { until } from './support/until'
import { serveUniverse } from './support/zunoBehindProxy'

interface Todo {
  id: string
  title: string
  done: boolean
  note?: string
}

const todos = (count: number): Todo[] => Array.from({ length: count }, (_, i) => ({ id: `t${i}`, title: `Todo number ${i}`, done: false }))

/** Todos whose `note`, when there, is a string (as a TypeScript `note?: string` says). */
const todoList: StandardSchemaV1<unknown, Todo[]> = {
  '~standard': {
    version: 1,
    vendor: 'review',
    validate: (value) => {
      if (!Array.isArray(value)) return { issues: [{ message: 'a list' }] }
      for (const item of value as Array<Record<string, unknown>>) {
        // As zod's `z.string().optional()`: undefined passes, null does not.
        if (item.note !== undefined && typeof item.note !== 'string') return { issues: [{ message: 'note is a string when there' }] }
      }
      return { value: value as Todo[] }
    },
  },
}

/** Todos whose titles never say BAD: a moderation schema that checks and does not transform. */
const moderated: StandardSchemaV1<unknown, Todo[]> = {
  '~standard': {
    version: 1,
    vendor: 'review',
    validate: (value) =>
      Array.isArray(value) && (value as Todo[]).every((todo) => !String(todo.title).includes('BAD')) ? { value: value as Todo[] } : { issues: [{ message: 'no BAD titles' }] },
  },
}

const app = defineZuno({
  stores: {
    todos: { initial: todos(2_000), ids: { '': 'id' }, merge: true, schema: todoList },
    board: { initial: todos(2_000), ids: { '': 'id' }, schema: moderated },
    small: { initial: todos(2), ids: { '': 'id' }, merge: true, schema: todoList },
    doc: { initial: { a: 1, b: 2 } as Record<string, unknown>, merge: true },
    vault: { initial: { users: [{ id: 'u1', pin: '4321', profile: { name: 'Ann' } }] } },
  },
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve(options: Partial<UniverseOptions> = {}, handlerOptions: NodeHandlerOptions = {}) {
  const universe = createUniverse({ app, ...options })
  await universe.ready
  const { url, close } = await serveUniverse(universe, handlerOptions)
  cleanups.push(close)
  const client = { clientId: newClientId(), opId: 0 }
  const post = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  const propose = (storeKey: string, baseVersion: number, patch: Patch, headers: Record<string, string> = {}, ids = { clientId: client.clientId, opId: ++client.opId }) =>
    post({ storeKey, baseVersion, epoch: universe.epoch, patch, ...ids }, headers)
  return { universe, url, post, propose, client }
}

describe('a path longer than the depth limit', () => {
  it('answers a 1 MiB patch of 50 long paths on a stale base within a second (it blocks the event loop for seconds)', async () => {
    const { propose } = await serve()
    expect((await propose('doc', 0, [[['a'], 2]])).status).toBe(200)
    // 50 removals whose paths are 5,000 steps each: about 1 MB, under the body limit and the 1,000
    // operations. (Since 67a396e a *set*'s path is bounded by the depth limit; a removal's is not.)
    const path = Array.from({ length: 5_000 }, () => 'b')
    const patch: Patch = Array.from({ length: 50 }, () => [path] as const)
    // The event loop is blocked while the server decides: measure how late a timer fires.
    let worstLag = 0
    let last = performance.now()
    const timer = setInterval(() => {
      const now = performance.now()
      worstLag = Math.max(worstLag, now - last - 10)
      last = now
    }, 10)
    const started = performance.now()
    const answer = await propose('doc', 0, patch) // stale: the store is at version 1
    const took = performance.now() - started
    clearInterval(timer)
    // Refused before any work: a path longer than the depth limit names nothing a state can hold.
    expect([answer.status, (answer.body as { error?: string }).error]).toEqual([400, 'invalid_patch'])
    expect(took).toBeLessThan(1_000)
    expect(worstLag).toBeLessThan(1_000)
  }, 60_000)
})

describe('a principal who may write but not read a store', () => {
  /** `bob` may write `vault` but not read it. */
  const bobWritesVault: NodeHandlerOptions = {
    authenticate: (request) => {
      const user = request.header('x-user')
      return user ? { id: user } : undefined
    },
    authorize: ({ storeKey, action }) => !(storeKey === 'vault' && action === 'read'),
  }

  it('gives the same answer to a patch that finds the item of a guessed pin and to one that does not', async () => {
    const { propose } = await serve({}, bobWritesVault)
    const headers = { 'x-user': 'bob' }
    // Paths that step by a guessed id (`pin`) and then into a key no item has: it never applies,
    // so nothing is written, whatever the guess; only the depth of the mismatch differs.
    const probe = (pin: string) => propose('vault', 0, [[['users', { pin }, 'nothing here', 'x'], 1]], headers)
    const wrong = await probe('1111')
    const right = await probe('4321')
    expect(wrong.status).toBe(409)
    expect(right.status).toBe(409)
    // Before a fix: "Nothing to change at [\"users\",{\"pin\":\"1111\"}]" against
    // "Nothing to change at [\"users\",{\"pin\":\"4321\"},\"nothing here\"]": the pin, a guess per request,
    // from a principal the docs say learns "its version, never its state".
    expect(right.body.message).toBe(String(wrong.body.message).replace('1111', '4321'))
  })

  it('gives the same answer whether a key exists (structure oracle)', async () => {
    const { propose } = await serve({}, bobWritesVault)
    const headers = { 'x-user': 'bob' }
    const has = await propose('vault', 0, [[['users', 0, 'profile', 'nope', 'x'], 1]], headers)
    const hasNot = await propose('vault', 0, [[['users', 0, 'profiles', 'nope', 'x'], 1]], headers)
    expect(has.body.error).toBe(hasNot.body.error)
    // Before a fix: ...at ["users",0,"profile","nope"] against ...at ["users",0,"profiles"]: whether `profile` exists.
    expect(String(has.body.message).replace('"profile"', '"profiles"')).toBe(hasNot.body.message)
  })
})

describe('a field set to `undefined`', () => {
  it('stores what a whole state would store when an updater clears an optional field of one todo', async () => {
    const { url, universe } = await serve()
    // First put a note on t1 (a patch: the list is large).
    const replica = connect({ url, EventSource, tabs: false, app })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const store = replica.store('todos')
    await store.set((list) => list.map((todo) => (todo.id === 't1' ? { ...todo, note: 'call Ann' } : todo)))
    // Then clear it the usual way in JS: a spread with `note: undefined`. As JSON (the whole state)
    // that is no `note` key at all, which the schema accepts.
    const cleared = store.set((list) => list.map((todo) => (todo.id === 't1' ? ({ ...todo, note: undefined } as unknown as Todo) : todo)))
    // The patch says `[[{id:'t1'},'note'], null]`: the server stores null, and its schema refuses
    // the write for good (422 invalid_state): the user's write is lost, where the same updater on a
    // smaller store (sent whole) is accepted.
    await expect(cleared).resolves.toBeDefined()
    const t1 = (universe.snapshot(['todos']).stores as unknown as Record<string, { state: Todo[] }>).todos?.state.find((todo) => todo.id === 't1')
    expect(t1 === undefined ? 'missing' : 'note' in t1 ? t1.note : 'absent').toBe('absent')
  }, 20_000)

  it('(control) the same cleared list sent whole (what a client sent before deltas) is accepted, with no note', async () => {
    const { post, universe, client } = await serve()
    const list = todos(2_000).map((todo) => (todo.id === 't1' ? { ...todo, note: undefined } : todo))
    // JSON.stringify drops `note: undefined`, as encodeProposal does for a whole state.
    const answer = await post({ storeKey: 'todos', baseVersion: 0, epoch: universe.epoch, state: list, clientId: client.clientId, opId: 1 })
    expect(answer.status).toBe(200)
  })
})

describe('an item named by a key other than its declared id', () => {
  it('refuses (409) an edit of t1.done by `title` on a stale base after an edit of t1.done by `id`', async () => {
    const { propose } = await serve()
    // Alice ticks t1 (by its id, as the app's `ids` say).
    expect((await propose('todos', 0, [[[{ id: 't1' }, 'done'], true]])).status).toBe(200)
    // The same item, the same field, named by another key of it (a client of another build whose
    // `ids` say `title`, or a hostile one): pathKeys keeps only the id's value, `#"Todo number 1"` vs `#"t1"`.
    // Bob, on the same base, edits the same field of the same item, naming it by its title.
    const second = await propose('todos', 0, [[[{ title: 'Todo number 1' }, 'done'], false]])
    // Before a fix: 200, and Alice's tick is undone without either writer hearing of a conflict.
    expect(second.status).toBe(409)
  })
})

describe('what a patch streams', () => {
  it('never streams a title the schema refuses, set and then overwritten within one patch', async () => {
    const { url, propose } = await serve()
    const stream = await openRawStream(`${url}/sse?stores=board&patches=1`)
    cleanups.push(() => stream.close())
    expect((await stream.nextEvent()).event).toBe('snapshot')
    // The state after the patch passes the schema; the first operation's value would not.
    const answer = await propose('board', 0, [
      [[{ id: 't1' }, 'title'], 'BAD words for every subscriber'],
      [[{ id: 't1' }, 'title'], 'fine'],
    ])
    expect(answer.status).toBe(200)
    const frame = await stream.nextEvent()
    expect(frame.event).toBe('state')
    // Before a fix: the frame is {"patch":[[[{"id":"t1"},"title"],"BAD words…"],[[{"id":"t1"},"title"],"fine"]]}:
    // every subscriber (and the resume log, and the patch history) gets what the schema refuses.
    expect(frame.data).not.toContain('BAD')
  })

  it('streams no more than the change: a set-then-remove of 50 KB changes nothing and should not travel', async () => {
    const { url, propose } = await serve()
    const stream = await openRawStream(`${url}/sse?stores=board&patches=1`)
    cleanups.push(() => stream.close())
    await stream.nextEvent()
    const answer = await propose('board', 0, [
      [[{ id: 'junk' }], { id: 'junk', title: 'x'.repeat(50_000), done: false }],
      [[{ id: 'junk' }]],
    ])
    expect(answer.status).toBe(200)
    const frame = await stream.nextEvent()
    // Before a fix: ~50 KB per subscriber per such write (and kept in the patch history, which
    // maxStateBytes does not bound), for a version whose state equals the one before.
    expect((frame.data ?? '').length).toBeLessThan(1_000)
  })
})

describe('a set restored from the outbox', () => {
  it("keeps Carol's acknowledged edit of another todo when Alice's restored tick of t1 conflicts and rebases", async () => {
    const { url, universe, propose } = await serve()
    const { outbox, entries } = memoryOutbox()
    // Alice's first session: her tick of t1 goes (as a patch) but no answer comes back; she closes the tab.
    let online = true
    const flaky: typeof fetch = (input, init) => (init?.method === 'POST' && !online ? Promise.reject(new TypeError('offline')) : fetch(input, init))
    const first = connect({ url, EventSource, tabs: false, app, outbox, fetch: flaky })
    cleanups.push(() => first.close())
    await until(() => first.status.get() === 'connected')
    // An op that lands first (so the lost one is not the client's first op, which a 409 refuses as outcome_unknown).
    await first.store('todos').set((list) => list.map((todo) => (todo.id === 't2' ? { ...todo, done: true } : todo)))
    online = false
    const lost = first.store('todos').set((list) => list.map((todo) => (todo.id === 't1' ? { ...todo, done: true } : todo))).catch(() => 'closed')
    await until(() => [...entries.values()].some((entry) => 'storeKey' in entry && entry.sentOn?.patch !== undefined))
    first.close()
    await lost
    // Meanwhile Bob ticks t1 too (so Alice's patch overlaps: 409), and Carol renames t500: both acknowledged.
    expect((await propose('todos', 1, [[[{ id: 't1' }, 'done'], true]])).status).toBe(200)
    expect((await propose('todos', 2, [[[{ id: 't500' }, 'title'], 'Carol was here']])).status).toBe(200)
    // Alice reopens: her op is restored and sent again.
    const second = connect({ url, EventSource, tabs: false, app, outbox })
    cleanups.push(() => second.close())
    await until(() => second.status.get() === 'connected' && second.pending.get() === 0 && entries.size === 0, 10_000)
    const state = (universe.snapshot(['todos']).stores as unknown as Record<string, { state: Todo[] }>).todos?.state ?? []
    // Before a fix: the restored op rebases as the plain list it saved (computed on version 0), sent
    // on the current version: Carol's acknowledged title is reverted to 'Todo number 500'.
    expect(state.find((todo) => todo.id === 't1')?.done).toBe(true)
    expect(state.find((todo) => todo.id === 't500')?.title).toBe('Carol was here')
  }, 20_000)
})

describe('deltas at their edges', () => {
  it('a merged patch whose answer was lost, retried after more commits, is answered as a duplicate and applied once', async () => {
    const { propose, client, universe } = await serve()
    const first = { clientId: client.clientId, opId: ++client.opId }
    const other = { clientId: newClientId(), opId: 0 }
    expect((await propose('todos', 0, [[[{ id: 't2' }, 'title'], 'x']], {}, { clientId: other.clientId, opId: ++other.opId })).status).toBe(200)
    // Merged on base 0 over t2's edit: an insert after t1.
    const insert: Patch = [[[{ id: 'n1' }], { id: 'n1', title: 'new', done: false }, 't1']]
    expect((await propose('todos', 0, insert, {}, first)).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await propose('todos', 2 + i, [[[{ id: `t${10 + i}` }, 'done'], true]], {}, { clientId: other.clientId, opId: ++other.opId })).status).toBe(200)
    const retry = await propose('todos', 0, insert, {}, first)
    expect(retry.status).toBe(200)
    const state = (universe.snapshot(['todos']).stores as unknown as Record<string, { state: Todo[] }>).todos?.state ?? []
    expect(state.filter((todo) => todo.id === 'n1')).toHaveLength(1)
    expect(state[2]?.id).toBe('n1')
  })

  it('the same, past the patch history (patchHistory 2)', async () => {
    const { propose, client, universe } = await serve({ patchHistory: 2 })
    const first = { clientId: client.clientId, opId: ++client.opId }
    const other = { clientId: newClientId(), opId: 0 }
    const insert: Patch = [[[{ id: 'n1' }], { id: 'n1', title: 'new', done: false }, 't1']]
    expect((await propose('todos', 0, insert, {}, first)).status).toBe(200)
    for (let i = 0; i < 5; i++) expect((await propose('todos', 1 + i, [[[{ id: `t${10 + i}` }, 'done'], true]], {}, { clientId: other.clientId, opId: ++other.opId })).status).toBe(200)
    const retry = await propose('todos', 0, insert, {}, first)
    expect(retry.status).toBe(200)
    const state = (universe.snapshot(['todos']).stores as unknown as Record<string, { state: Todo[] }>).todos?.state ?? []
    expect(state.filter((todo) => todo.id === 'n1')).toHaveLength(1)
  })

  it('refuses a patch that makes the state too large, one on a store that may not be created, and keeps __proto__ an own key', async () => {
    const { propose, universe } = await serve({ maxStateBytes: 200_000 })
    const big = await propose('doc', 0, [[['big'], 'x'.repeat(300_000)]])
    expect([big.status, big.body.error]).toEqual([413, 'state_too_large'])
    const created = await propose('nope', 0, [[[], { a: 1 }]])
    expect(created.body.error).toBe('store_not_allowed')
    const proto = await propose('doc', 0, JSON.parse('[[["__proto__"], {"polluted": true}], [["constructor"], 1]]') as Patch)
    expect(proto.status).toBe(200)
    const doc = (universe.snapshot(['doc']).stores as unknown as Record<string, { state: Record<string, unknown> }>).doc?.state
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype)
    expect(Object.hasOwn(doc as object, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('a principal who may write but not read is told to send states whole, and learns nothing of the state', async () => {
    const { propose } = await serve({}, {
      authenticate: (request) => ({ id: request.header('x-user') ?? 'anon' }),
      authorize: ({ storeKey, action }) => !(storeKey === 'todos' && action === 'read'),
    })
    for (const patch of [[[[{ id: 't1' }, 'done'], true]], [[[{ id: 'nope' }, 'done'], true]]] as Patch[]) {
      const answer = await propose('todos', 0, patch, { 'x-user': 'bob' })
      expect([answer.status, (answer.body as { error?: string }).error]).toEqual([409, 'patch_mismatch'])
      expect('patches' in answer.body || 'state' in answer.body).toBe(false)
    }
  })
})
