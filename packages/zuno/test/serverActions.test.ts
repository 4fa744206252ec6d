/**
 * Actions on the server, over real HTTP: the server runs the app's action on its current state and
 * commits every store it wrote as one change (one event, one seq), streamed as one `commit` event or
 * as the part a stream may see; exactly-once by (client, opId) like any op; every refusal a 4xx
 * with a code, recorded where the protocol says so.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as v from 'valibot'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { defineZuno, refuseAction } from 'zuno'
import { createFileStorage } from 'zuno/file'
import { createSqliteStorage } from 'zuno/sqlite'
import { createNodeHandler, createUniverse, type Storage, type SyncServerOptions, type UniverseOptions } from 'zuno/server'
import { newClientId } from '../src/id'
import { openRawStream } from './support/sseReader'

const app = defineZuno({
  stores: {
    a: { initial: 10, schema: v.pipe(v.number(), v.minValue(0)) },
    b: { initial: 10, schema: v.pipe(v.number(), v.minValue(0)) },
    counter: { initial: 0 },
    secret: { initial: 'hidden' },
  },
  actions: {
    /** Moves `amount` from one store to the other: the total never changes. */
    move: {
      args: v.object({ from: v.picklist(['a', 'b']), to: v.picklist(['a', 'b']), amount: v.pipe(v.number(), v.integer()) }),
      run: (tx, { from, to, amount }) => {
        if (tx.get(from) < amount) refuseAction(`${from} holds less than ${amount}`)
        tx.set(from, (n) => n - amount)
        tx.set(to, (n) => n + amount)
      },
    },
    increment: { run: (tx) => tx.set('counter', (n) => n + 1) },
    nothing: { run: () => {} },
    /** Breaks `a`'s schema when asked: the store refuses, the action does not. */
    overdraw: { run: (tx) => tx.set('a', -1) },
    leak: { run: (tx) => tx.set('counter', tx.get('secret').length) },
    blind: { run: (tx) => tx.set('secret', 'overwritten') },
    crash: {
      run: () => {
        throw new Error('a bug in the action')
      },
    },
  },
})

const cleanups: Array<() => unknown> = []
const dirs: string[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  vi.restoreAllMocks()
})

async function serve(options: { storage?: Storage; universe?: Partial<UniverseOptions> & { actions?: object }; sync?: SyncServerOptions } = {}) {
  const universe = createUniverse({ app, ...(options.storage === undefined ? {} : { storage: options.storage }), ...(options.universe as object) })
  const handler = createNodeHandler(universe, options.sync ?? {})
  const http: Server = createServer(handler)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  // A storage passed in stays open when the universe closes: the test closes it, as a stopped server would.
  cleanups.push(() => options.storage?.close())
  cleanups.push(() => universe.close(), () => handler.close(), () => new Promise((resolve) => http.close(resolve)), () => http.closeAllConnections())
  await universe.ready
  const { port } = http.address() as { port: number }
  const url = `http://127.0.0.1:${port}/zuno`
  const client = { clientId: newClientId(), opId: 0 }
  /** POSTs a body as is; returns status and JSON. */
  const post = async (body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  /** The next op of this test's client: an action. */
  const act = (action: string, args?: unknown, ids = { clientId: client.clientId, opId: ++client.opId }, headers: Record<string, string> = {}) =>
    post({ action, ...(args === undefined ? {} : { args }), epoch: universe.epoch, ...ids }, headers)
  return { universe, url, post, act, client }
}

describe('an action over HTTP', () => {
  it('commits every store it wrote as one event, answered with what it changed and streamed as one commit', async () => {
    const { universe, url, act } = await serve()
    const stream = await openRawStream(`${url}/sse`)
    cleanups.push(() => stream.close())
    expect((await stream.nextEvent()).event).toBe('snapshot')
    const before = universe.cursor

    const answer = await act('move', { from: 'a', to: 'b', amount: 3 })
    expect(answer).toEqual({
      status: 200,
      body: { ok: true, action: 'move', changes: [{ storeKey: 'a', version: 1, state: 7 }, { storeKey: 'b', version: 1, state: 13 }], cursor: universe.cursor },
    })
    // One change of the log, not two.
    expect(Number(universe.cursor.split('-')[1])).toBe(Number(before.split('-')[1]) + 1)
    const event = await stream.nextEvent()
    expect(event.event).toBe('commit')
    expect(event.id).toBe(universe.cursor)
    const data = JSON.parse(event.data ?? '') as Record<string, unknown>
    expect(data).toMatchObject({ changes: [{ storeKey: 'a', version: 1, state: 7 }, { storeKey: 'b', version: 1, state: 13 }], opId: 1 })
    expect(typeof data.writer).toBe('string')
    expect(universe.snapshot(['a', 'b']).stores).toEqual({ a: { version: 1, state: 7 }, b: { version: 1, state: 13 } })
  })

  it('shows server code every store of a commit at once: no subscriber sees half of it', async () => {
    const { universe, act } = await serve()
    const totals: number[] = []
    const seeTotal = () => totals.push(universe.store('a').get() + universe.store('b').get())
    universe.store('a').subscribe(seeTotal)
    universe.store('b').subscribe(seeTotal)
    for (let i = 0; i < 5; i++) expect((await act('move', { from: i % 2 ? 'a' : 'b', to: i % 2 ? 'b' : 'a', amount: 2 })).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(totals.length).toBeGreaterThanOrEqual(10)
    expect(new Set(totals)).toEqual(new Set([20]))
  })

  it('streams a stream the part it follows or may read, and never a store it may not read', async () => {
    const { url, act } = await serve({
      sync: {
        authenticate: (request) => ({ id: request.header('x-user') ?? request.query.get('user') ?? 'anon' }),
        authorize: ({ principal, storeKey, action }) => !(storeKey === 'b' && action === 'read' && principal?.id === 'eve'),
      },
    })
    const onlyA = await openRawStream(`${url}/sse?stores=a&user=ann`)
    const eve = await openRawStream(`${url}/sse?user=eve`)
    const ann = await openRawStream(`${url}/sse?user=ann`)
    cleanups.push(() => onlyA.close(), () => eve.close(), () => ann.close())
    for (const stream of [onlyA, eve, ann]) expect((await stream.nextEvent()).event).toBe('snapshot')

    const answer = await act('move', { from: 'a', to: 'b', amount: 1 }, undefined, { 'x-user': 'ann' })
    expect(answer.status).toBe(200)
    for (const stream of [onlyA, eve]) {
      const event = await stream.nextEvent()
      expect(event.event).toBe('state')
      expect(JSON.parse(event.data ?? '')).toMatchObject({ storeKey: 'a', version: 1, state: 9, opId: 1 })
    }
    expect((await ann.nextEvent()).event).toBe('commit')
    // Eve may write b but not read it: her own answer carries b's version, not its state.
    const eves = await act('move', { from: 'a', to: 'b', amount: 1 }, { clientId: newClientId(), opId: 1 }, { 'x-user': 'eve' })
    // ...and she may not run an action that reads b: `move` reads both.
    expect(eves.status).toBe(403)
    expect(eves.body).toMatchObject({ ok: false, error: 'forbidden' })
    const blind = await act('blind', undefined, { clientId: newClientId(), opId: 1 }, { 'x-user': 'eve' })
    expect(blind).toMatchObject({ status: 200 })
    const eveAnswer = blind.body as { changes: Array<Record<string, unknown>> }
    expect(eveAnswer.changes).toEqual([{ storeKey: 'secret', version: 1, state: 'overwritten' }])
    const events = await eve.drainEvents(100)
    expect(events.map((event) => event.data).join('\n')).not.toContain('"b"')
  })

  it('refuses an action that reads a store its caller may not read, recorded', async () => {
    const { act, client } = await serve({ sync: { authorize: ({ storeKey, action }) => !(storeKey === 'secret' && action === 'read') } })
    const leak = await act('leak')
    expect(leak).toMatchObject({ status: 403, body: { ok: false, error: 'forbidden', message: 'You may not read "secret"' } })
    // Recorded: a retry is told the same, and the next op follows it.
    expect(await act('leak', undefined, { clientId: client.clientId, opId: 1 })).toEqual(leak)
    expect((await act('increment')).status).toBe(200)
  })

  it('answers a retry with its first answer and applies it once; another action under the same id is op_id_reused', async () => {
    const { universe, act, post, client } = await serve()
    const first = await act('move', { from: 'a', to: 'b', amount: 4 })
    const again = await act('move', { from: 'a', to: 'b', amount: 4 }, { clientId: client.clientId, opId: 1 })
    expect(again).toEqual(first)
    expect(universe.store('a').get()).toBe(6)
    expect((await act('move', { from: 'a', to: 'b', amount: 5 }, { clientId: client.clientId, opId: 1 })).body).toMatchObject({ error: 'op_id_reused' })
    // A state proposal under an action's id is another op too.
    const set = await post({ storeKey: 'a', baseVersion: 1, state: 0, epoch: universe.epoch, clientId: client.clientId, opId: 1 })
    expect(set.body).toMatchObject({ error: 'op_id_reused' })
    expect(universe.store('a').get()).toBe(6)
  })

  it('records an action that wrote nothing, and answers its retry the same', async () => {
    const { universe, act, client } = await serve()
    const cursor = universe.cursor
    const first = await act('nothing')
    expect(first).toEqual({ status: 200, body: { ok: true, action: 'nothing', changes: [], cursor } })
    expect(await act('nothing', undefined, { clientId: client.clientId, opId: 1 })).toEqual(first)
    // The mark moved: op 2 is next, op 3 would be a gap.
    expect((await act('increment', undefined, { clientId: client.clientId, opId: 3 })).body).toMatchObject({ error: 'unknown_client' })
    expect((await act('increment', undefined, { clientId: client.clientId, opId: 2 })).status).toBe(200)
  })

  it('refuses for good what the action refuses, what its arguments schema refuses and what a store refuses; each recorded', async () => {
    const { universe, act, client } = await serve()
    const refused = await act('move', { from: 'a', to: 'b', amount: 11 })
    expect(refused).toEqual({ status: 422, body: { ok: false, error: 'action_refused', message: 'a holds less than 11' } })
    expect(await act('move', { from: 'a', to: 'b', amount: 11 }, { clientId: client.clientId, opId: 1 })).toEqual(refused)

    const badArgs = await act('move', { from: 'c', to: 'b', amount: 1 })
    expect(badArgs.status).toBe(422)
    expect(badArgs.body).toMatchObject({ error: 'invalid_args', issues: [{ path: ['from'] }] })
    expect((await act('increment', 5)).body).toMatchObject({ error: 'invalid_args', message: 'The action "increment" takes no arguments' })

    const overdraw = await act('overdraw')
    expect(overdraw).toMatchObject({ status: 422, body: { error: 'invalid_state' } })
    expect(universe.store('a').get()).toBe(10)
    expect(client.opId).toBe(4)
    expect((await act('increment')).status).toBe(200)
  })

  it('answers a throwing action action_failed and an unknown one unknown_action, each recorded; the throw is logged', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    const { act, client } = await serve()
    expect(await act('crash')).toEqual({ status: 422, body: { ok: false, error: 'action_failed', message: 'The action "crash" failed on the server' } })
    expect(String(logged.mock.calls[0]?.[1])).toContain('a bug in the action')
    const unknown = await act('launch')
    expect(unknown).toMatchObject({ status: 400, body: { error: 'unknown_action' } })
    // Recorded: a retry is told the same, and op 3 follows.
    expect(await act('launch', undefined, { clientId: client.clientId, opId: 2 })).toEqual(unknown)
    expect((await act('increment', undefined, { clientId: client.clientId, opId: 3 })).status).toBe(200)
  })

  it('refuses an action authorizeAction refuses, recorded, before it runs', async () => {
    const ran = vi.fn()
    const { act, client } = await serve({
      universe: { actions: { increment: ran } },
      sync: { authorizeAction: ({ action, args }) => action !== 'increment' || args !== undefined },
    })
    const answer = await act('increment')
    expect(answer).toMatchObject({ status: 403, body: { error: 'forbidden', message: 'You may not run "increment"' } })
    expect(await act('increment', undefined, { clientId: client.clientId, opId: 1 })).toEqual(answer)
    expect(ran).not.toHaveBeenCalled()
  })

  it('runs a server-only implementation in place of the shared one, told who calls', async () => {
    const { universe, act } = await serve({
      universe: {
        actions: {
          increment: (tx: { set: (key: string, next: (n: number) => number) => void }, _args: unknown, { principal }: { principal: { id: string } | undefined }) =>
            tx.set('counter', (n) => n + (principal?.id === 'admin' ? 100 : 1)),
        },
      },
      sync: { authenticate: (request) => ({ id: request.header('x-user') ?? 'anon' }) },
    })
    await act('increment', undefined, undefined, { 'x-user': 'admin' })
    await act('increment', undefined, undefined, { 'x-user': 'admin' })
    expect(universe.store('counter').get()).toBe(200)
  })

  it('runs an action again when a store it read moved before its commit, so what it wrote still follows from what it read', async () => {
    let runs = 0
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    const { universe, act } = await serve({
      universe: {
        actions: {
          // Copies a into counter after a pause; a `set` of a lands during the first run.
          increment: async (tx: { get: (key: string) => unknown; set: (key: string, value: unknown) => void }) => {
            runs += 1
            const a = tx.get('a')
            if (runs === 1) await held
            tx.set('counter', a)
          },
        },
      },
    })
    const answer = act('increment')
    await new Promise((resolve) => setTimeout(resolve, 20))
    await universe.store('a').set(42)
    release()
    expect((await answer).status).toBe(200)
    expect(runs).toBe(2)
    expect(universe.store('counter').get()).toBe(42)
  })

  it('lets 8 writers increment one store through an action with no conflict and no refusal', async () => {
    const { universe, post } = await serve({ sync: { maxProposalsPerSecond: 100_000 } })
    const writers = Array.from({ length: 8 }, () => ({ clientId: newClientId(), opId: 0 }))
    const statuses: number[] = []
    await Promise.all(
      writers.map(async (writer) => {
        for (let i = 0; i < 50; i++) {
          const { status } = await post({ action: 'increment', epoch: universe.epoch, clientId: writer.clientId, opId: ++writer.opId })
          statuses.push(status)
        }
      }),
    )
    expect(statuses.filter((status) => status !== 200)).toEqual([])
    expect(universe.store('counter').get()).toBe(400)
    expect(universe.store('counter').version).toBe(400)
  })

  it('runs an action as server code, typed from the app, streamed like a client\'s', async () => {
    const { universe, url } = await serve()
    const stream = await openRawStream(`${url}/sse`)
    cleanups.push(() => stream.close())
    await stream.nextEvent()
    await universe.act('move', { from: 'a', to: 'b', amount: 1 })
    expect((await stream.nextEvent()).event).toBe('commit')
    await universe.act('increment')
    await expect(universe.act('move', { from: 'a', to: 'b', amount: 100 })).rejects.toMatchObject({ code: 'action_refused' })
    // @ts-expect-error an action the app does not define
    await expect(universe.act('launch')).rejects.toMatchObject({ code: 'unknown_action' })
    // @ts-expect-error arguments of another shape
    await expect(universe.act('move', { from: 'a' })).rejects.toMatchObject({ code: 'invalid_args' })
    // A server write after them keeps going: refusals used their ids up or left them free, as recorded.
    await universe.act('increment')
    expect(universe.snapshot(['a', 'b', 'counter']).stores).toEqual({ a: { version: 1, state: 9 }, b: { version: 1, state: 11 }, counter: { version: 2, state: 2 } })
  })

  it('counts every store an action creates against maxStores', async () => {
    const twoNew = defineZuno({ stores: { x: { initial: 0 } }, actions: { spawn: { run: (tx) => (tx.set('p' as 'x', 1), tx.set('q' as 'x', 1)) } } })
    const universe = createUniverse({ app: twoNew, maxStores: 2, allowStore: () => true })
    cleanups.push(() => universe.close())
    await universe.ready
    const result = await universe.proposeAction({ action: 'spawn', epoch: universe.epoch, clientId: newClientId(), opId: 1 }, { principal: '', context: { principal: undefined } })
    expect(result).toMatchObject({ type: 'refused', error: { code: 'store_limit' } })
    expect(universe.snapshot().stores).toEqual({ x: { version: 0, state: 0 } })
  })

  it('gives malformed action bodies a 4xx with a code', async () => {
    const { universe, post } = await serve()
    const ids = () => ({ epoch: universe.epoch, clientId: newClientId(), opId: 1 })
    const cases: Array<[unknown, number, string]> = [
      [{ action: 'bad name!', ...ids() }, 400, 'invalid_action'],
      [{ action: 7, ...ids() }, 400, 'invalid_action'],
      [{ action: 'increment', storeKey: 'a', ...ids() }, 400, 'invalid_body'],
      [{ action: 'increment', state: 1, ...ids() }, 400, 'invalid_body'],
      [{ action: 'increment', ...ids(), epoch: '' }, 400, 'invalid_epoch'],
      [{ action: 'increment', ...ids(), clientId: 'x' }, 400, 'invalid_client_id'],
      [{ action: 'increment', ...ids(), opId: 0 }, 400, 'invalid_op_id'],
      [{ action: 'increment', ...ids(), epoch: 'other' }, 409, 'epoch_changed'],
      [{ action: 'constructor', ...ids() }, 400, 'unknown_action'],
      [{ action: '__proto__', ...ids() }, 400, 'unknown_action'],
      [`{"action":"move","args":{"from":"a","to":"b","amount":1e999},"epoch":"${universe.epoch}","clientId":"${newClientId()}","opId":1}`, 422, 'invalid_args'],
      [`{"action":"move","args":${'['.repeat(100)}${']'.repeat(100)},"epoch":"${universe.epoch}","clientId":"${newClientId()}","opId":1}`, 400, 'too_deep'],
    ]
    for (const [body, status, error] of cases) {
      const answer = await post(body)
      expect({ sent: body, ...answer }).toMatchObject({ status, body: { ok: false, error } })
    }
    expect(universe.store('counter').version).toBe(0)
  })
})

describe.each([
  ['file', createFileStorage],
  ['SQLite', createSqliteStorage],
] as const)('actions on the %s storage', (_, createStorage) => {
  it('keeps a commit of several stores across a restart, and a resume replays it as one commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zuno-actions-'))
    dirs.push(dir)
    const first = await serve({ storage: createStorage({ dir }) })
    const before = first.universe.cursor
    expect((await first.act('move', { from: 'a', to: 'b', amount: 2 })).status).toBe(200)
    expect((await first.act('nothing')).status).toBe(200)
    const { clientId } = first.client
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()

    const second = await serve({ storage: createStorage({ dir }) })
    expect(second.universe.snapshot(['a', 'b']).stores).toEqual({ a: { version: 1, state: 8 }, b: { version: 1, state: 12 } })
    // Both ops are remembered: their retries get their answers, not a second run.
    expect((await second.act('move', { from: 'a', to: 'b', amount: 2 }, { clientId, opId: 1 })).body).toMatchObject({ ok: true, changes: [{ storeKey: 'a', version: 1 }, { storeKey: 'b', version: 1 }] })
    expect((await second.act('nothing', undefined, { clientId, opId: 2 })).body).toMatchObject({ ok: true, changes: [] })
    expect(second.universe.store('a').get()).toBe(8)
    const resumed = await openRawStream(`${second.url}/sse`, { 'last-event-id': before })
    cleanups.push(() => resumed.close())
    const replay = await resumed.nextEvent()
    expect(replay.event).toBe('commit')
    expect(JSON.parse(replay.data ?? '')).toMatchObject({ changes: [{ storeKey: 'a', state: 8 }, { storeKey: 'b', state: 12 }] })
    expect((await resumed.nextEvent()).event).toBe('resumed')
  })
})
