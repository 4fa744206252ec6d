/**
 * Store families (issue #17): a store declared by pattern (`doc:{id}`) in `defineZuno`, with one
 * initial state, schema, ids, merge and authorization rule for every key it matches, on the server
 * (real HTTP, ephemeral ports) and on replicas.
 */
import { createServer, type Server } from 'node:http'
import { EventSource } from 'eventsource'
import * as v from 'valibot'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { connect, defineZuno } from 'zuno'
import { type Authorize, createNodeHandler, createUniverse } from 'zuno/server'
import { epochOf, rawProposal } from './support/rawProposal'
import { until } from './support/until'

const Doc = v.object({ title: v.string(), blocks: v.array(v.object({ id: v.string(), text: v.string() })) })

/** Who may use each room: the rule reads its `roomId` parameter. */
const members: Record<string, readonly string[]> = { '42': ['ann', 'bob'] }

const app = defineZuno({
  stores: {
    counter: { initial: 0 },
    'doc:{id}': { initial: { title: '', blocks: [] }, schema: Doc, ids: { '/blocks': 'id' }, merge: true },
    // Declared after the family that also matches it: an exact key wins wherever it is declared.
    'doc:main': { initial: { title: 'Main', blocks: [] } },
    'board:{boardId}:card:{cardId}': { initial: { text: '' } },
    'item:{x}': { initial: 'first' },
    'item:{y}': { initial: 'second' },
    'room:{roomId}': {
      initial: { messages: [] as string[] },
      authorize: ({ principal, params }) => principal !== undefined && (members[params.roomId] ?? []).includes(principal.id),
    },
    // An exact store's rule: no parameters.
    settings: { initial: { dark: false }, authorize: ({ principal, params }) => principal?.id === 'ann' && Object.keys(params).length === 0 },
    'boom:{id}': {
      initial: 0,
      authorize: () => {
        throw new Error('a bug in the rule')
      },
    },
  },
  actions: {
    rename: {
      args: v.object({ id: v.string(), title: v.string() }),
      run: (tx, { id, title }) => tx.set(`doc:${id}`, (doc) => ({ ...doc, title })),
    },
  },
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** The app's server on an ephemeral port; `authenticate` reads `Authorization: Bearer <name>`, when `signIn`. */
async function serve(options: { signIn?: boolean; authorize?: Authorize; stores?: { 'room:42': { messages: string[] } } } = {}) {
  const server = createUniverse({ app, ...(options.stores ? { stores: options.stores } : {}) })
  const handler = createNodeHandler(server, {
    ...(options.signIn ? { authenticate: (request) => ({ id: (request.header('authorization') ?? '').replace('Bearer ', '') || (request.query.get('token') ?? '') }) } : {}),
    ...(options.authorize ? { authorize: options.authorize } : {}),
  })
  const http: Server = createServer(handler)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise((resolve) => http.close(resolve)), () => handler.close(), () => server.close())
  const { port } = http.address() as { port: number }
  await server.ready
  return { server, url: `http://127.0.0.1:${port}/zuno` }
}

/** POSTs a proposal body to `/sync` as `user`; the status and the JSON body. */
async function post(url: string, body: string, user?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (user !== undefined) headers.authorization = `Bearer ${user}`
  const response = await fetch(`${url}/sync`, { method: 'POST', headers, body })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

/** Opens the stream of `stores` as `user`: its status, and the error code when it was refused. */
async function openStream(url: string, stores: string, user: string): Promise<{ status: number; error?: unknown }> {
  const controller = new AbortController()
  const response = await fetch(`${url}/sse?stores=${stores}`, { headers: { authorization: `Bearer ${user}` }, signal: controller.signal })
  if (response.status === 200) {
    controller.abort()
    return { status: 200 }
  }
  return { status: response.status, error: ((await response.json()) as { error: unknown }).error }
}

describe('store family patterns', () => {
  it('resolves a key to its exact store first, else to the first family, in declaration order, that matches it', async () => {
    const { server } = await serve()
    expect(server.store('doc:42').get()).toEqual({ title: '', blocks: [] })
    expect(server.store('doc:a-1.b_2').get()).toEqual({ title: '', blocks: [] })
    expect(server.store('doc:main').get()).toEqual({ title: 'Main', blocks: [] })
    expect(server.store('board:7:card:x9').get()).toEqual({ text: '' })
    expect(server.store('item:1').get()).toBe('first')
  })

  it('matches a placeholder to one or more key characters other than `:`', async () => {
    const { server, url } = await serve()
    // `doc:4:2` is a valid store key, but no family's: not declared, so not created.
    expect(server.store('doc:4:2').get()).toBeUndefined()
    expect(server.store('board:7:card:').get()).toBeUndefined()
    const epoch = await epochOf(url)
    for (const storeKey of ['doc:4:2', 'board:1:2:card:3', 'doc:', 'nope']) {
      const answer = await post(url, rawProposal(epoch, { storeKey, state: { title: 'x', blocks: [] } }))
      expect(answer, storeKey).toMatchObject({ status: 403, body: { error: 'store_not_allowed' } })
    }
  })

  it('refuses patterns that are not ones, when the app is defined', () => {
    for (const pattern of ['doc:{}', 'doc:{a}{b}', 'doc:{a}:{a}', 'doc {id}', 'doc:{id', 'doc:id}', 'doc:{1x}', '.doc:{id}', 'doc:{a-b}']) {
      expect(() => defineZuno({ stores: { [pattern]: { initial: 0 } } }), pattern).toThrow(TypeError)
    }
    expect(() => defineZuno({ stores: { '{tenant}:doc:{id}': { initial: 0 } } })).not.toThrow()
  })
})

describe("a family's store never written", () => {
  it('is at version 0 with its initial state on the server: snapshot by name, an action that reads it, a proposal on version 0', async () => {
    const { server, url } = await serve()
    expect(server.snapshot(['doc:42']).stores).toEqual({ 'doc:42': { version: 0, state: { title: '', blocks: [] } } })
    // Not among every store: a family has as many as keys; a written one is.
    expect(Object.keys(server.snapshot().stores).sort()).toEqual(['counter', 'doc:main', 'settings'])
    const state = (await (await fetch(`${url}/state?stores=doc:43`)).json()) as { stores: unknown }
    expect(state.stores).toEqual({ 'doc:43': { version: 0, state: { title: '', blocks: [] } } })

    await server.act('rename', { id: '7', title: 'Seven' })
    expect(server.store('doc:7').get()).toEqual({ title: 'Seven', blocks: [] })
    expect(server.snapshot().stores['doc:7']).toEqual({ version: 1, state: { title: 'Seven', blocks: [] } })

    const answer = await post(url, rawProposal(await epochOf(url), { storeKey: 'doc:8', baseVersion: 0, state: { title: 'Eight', blocks: [] } }))
    expect(answer).toMatchObject({ status: 200, body: { ok: true, version: 1 } })
    // A stale write on a family store is answered with its initial state, at version 0, as a declared store's is.
    const stale = await post(url, rawProposal(await epochOf(url), { storeKey: 'doc:9', baseVersion: 3, state: { title: 'x', blocks: [] } }))
    expect(stale).toMatchObject({ status: 409, body: { version: 0, state: { title: '', blocks: [] } } })
  })

  it("shows its family's initial state on a replica until it is written, and writes to it from there", async () => {
    const { server, url } = await serve()
    const client = connect({ app, url, EventSource })
    cleanups.push(() => client.close())
    expect(client.store('doc:5').get()).toEqual({ title: '', blocks: [] })
    expect(client.store('board:1:card:2').get()).toEqual({ text: '' })
    await until(() => client.status.get() === 'connected')
    expect(client.store('doc:5').get()).toEqual({ title: '', blocks: [] })
    await client.store('doc:5').set((doc) => ({ ...doc, title: 'Five' }))
    expect(server.store('doc:5').get()).toEqual({ title: 'Five', blocks: [] })
    await client.act('rename', { id: '6', title: 'Six' })
    expect(server.store('doc:6').get()).toEqual({ title: 'Six', blocks: [] })
  })
})

describe("a family's schema", () => {
  it('refuses a state on the server, from server code and over HTTP', async () => {
    const { server, url } = await serve()
    await expect(server.store('doc:1').set({ title: 5 } as never)).rejects.toMatchObject({ code: 'invalid_state' })
    const answer = await post(url, rawProposal(await epochOf(url), { storeKey: 'doc:1', state: { title: 5 } }))
    expect(answer).toMatchObject({ status: 422, body: { error: 'invalid_state' } })
    expect(server.snapshot(['doc:1']).stores['doc:1']?.version).toBe(0)
  })

  it('refuses a state on a replica before it is proposed', async () => {
    const { url } = await serve()
    let posts = 0
    const countingFetch: typeof fetch = (input, init) => {
      if (init?.method === 'POST') posts += 1
      return fetch(input, init)
    }
    const client = connect({ app, url, EventSource, fetch: countingFetch })
    cleanups.push(() => client.close())
    await until(() => client.status.get() === 'connected')
    await expect(client.store('doc:1').set({ title: 5 } as never)).rejects.toMatchObject({ code: 'invalid_state' })
    expect(posts).toBe(0)
    expect(client.store('doc:1').get()).toEqual({ title: '', blocks: [] })
  })
})

describe("a family's ids and merge", () => {
  it('merges two patches of one doc made on the same version, each editing its own block by id', async () => {
    const { server, url } = await serve()
    const blocks = [
      { id: 'a', text: '' },
      { id: 'b', text: '' },
    ]
    await server.store('doc:1').set({ title: '', blocks })
    const epoch = await epochOf(url)
    const edit = (id: string, text: string) => JSON.stringify({ ...JSON.parse(rawProposal(epoch, { storeKey: 'doc:1', baseVersion: 1 })), state: undefined, patch: [[['blocks', { id }, 'text'], text]] })
    expect(await post(url, edit('a', 'Ann'))).toMatchObject({ status: 200, body: { version: 2 } })
    // Made on version 1 too: merged over the first, since the family says blocks are identified by `id` and merge.
    expect(await post(url, edit('b', 'Bob'))).toMatchObject({ status: 200, body: { version: 3 } })
    expect(server.store('doc:1').get()).toEqual({ title: '', blocks: [{ id: 'a', text: 'Ann' }, { id: 'b', text: 'Bob' }] })
  })
})

describe("a family's authorize rule", () => {
  it('lets members of room 42 read and write room:42, and refuses anybody else with 403 forbidden', async () => {
    const { url } = await serve({ signIn: true })
    const epoch = await epochOf(url)
    expect(await openStream(url, 'room:42', 'carl')).toEqual({ status: 403, error: 'forbidden' })
    expect(await openStream(url, 'room:42', 'ann')).toEqual({ status: 200 })
    // Room 7 has no members: its parameter, not the family, decides.
    expect(await openStream(url, 'room:7', 'ann')).toEqual({ status: 403, error: 'forbidden' })
    const write = (user: string) => post(url, rawProposal(epoch, { storeKey: 'room:42', state: { messages: [`from ${user}`] } }), user)
    expect(await write('carl')).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    expect(await write('ann')).toMatchObject({ status: 200, body: { ok: true, version: 1 } })
    const state = await fetch(`${url}/state?stores=room:42`, { headers: { authorization: 'Bearer carl' } })
    expect(state.status).toBe(403)
  })

  it("must allow as well as the server's authorize option: either one refusing is 403", async () => {
    // The option lets everybody read, and lets nobody but bob write.
    const { url } = await serve({ signIn: true, authorize: ({ principal, action }) => action === 'read' || principal?.id === 'bob' })
    const epoch = await epochOf(url)
    const write = (user: string) => post(url, rawProposal(epoch, { storeKey: 'room:42', state: { messages: [] } }), user)
    expect(await write('ann')).toMatchObject({ status: 403, body: { error: 'forbidden' } }) // the rule allows, the option refuses
    expect(await write('bob')).toMatchObject({ status: 200 }) // both allow
    expect(await openStream(url, 'room:42', 'carl')).toEqual({ status: 403, error: 'forbidden' }) // the option allows, the rule refuses
    // A store without a rule is the option's alone.
    expect(await post(url, rawProposal(epoch, { storeKey: 'counter', state: 1 }), 'bob')).toMatchObject({ status: 200 })
  })

  it("keeps its family's rule for a key whose initial state the server overrides", async () => {
    const { url } = await serve({ signIn: true, stores: { 'room:42': { messages: ['welcome'] } } })
    expect(await openStream(url, 'room:42', 'carl')).toEqual({ status: 403, error: 'forbidden' })
    const state = await fetch(`${url}/state?stores=room:42`, { headers: { authorization: 'Bearer ann' } })
    expect(await state.json()).toMatchObject({ stores: { 'room:42': { version: 0, state: { messages: ['welcome'] } } } })
  })

  it("asks an exact store's rule too, with no parameters; an unfiltered read leaves out what the rule refuses", async () => {
    const { url } = await serve({ signIn: true })
    const read = async (stores: string, user: string) => {
      const response = await fetch(`${url}/state${stores}`, { headers: { authorization: `Bearer ${user}` } })
      return { status: response.status, stores: Object.keys(((await response.json()) as { stores?: object }).stores ?? {}).sort() }
    }
    expect(await read('?stores=settings', 'ann')).toEqual({ status: 200, stores: ['settings'] })
    expect(await read('?stores=settings', 'carl')).toEqual({ status: 403, stores: [] })
    expect(await read('', 'carl')).toEqual({ status: 200, stores: ['counter', 'doc:main'] })
  })

  it('refuses, and logs, when the rule throws', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    const { url } = await serve({ signIn: true })
    expect(await openStream(url, 'boom:1', 'ann')).toEqual({ status: 403, error: 'forbidden' })
    expect(errors).toHaveBeenCalledTimes(1)
    expect(String(errors.mock.calls[0]?.[0])).toContain('boom:1')
  })

  it("keeps an action within the rule: a non-member's action that writes room:42 is refused", async () => {
    const { server, url } = await serve({ signIn: true })
    const client = connect({ app, url, EventSource, token: () => 'carl' })
    cleanups.push(() => client.close())
    await until(() => client.status.get() === 'connected')
    await expect(client.store('room:42').set({ messages: ['hi'] })).rejects.toMatchObject({ code: 'forbidden' })
    expect(server.snapshot(['room:42']).stores['room:42']?.version).toBe(0)
  })
})
