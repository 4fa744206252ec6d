/**
 * The types of store families (issue #17). Compiled by `tsc -p tsconfig.json`: a family's keys
 * are a template literal type on the server, on a replica and in an action's transaction; its
 * rule's `params` are typed from its pattern; each `@ts-expect-error` is a use the types must refuse.
 */
import { EventSource } from 'eventsource'
import * as v from 'valibot'
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import { connect, defineZuno, type KeysOfPattern, type ParamsOfPattern, type StatesOfApp, type Store } from 'zuno'
import { createUniverse } from 'zuno/server'

const app = defineZuno({
  stores: {
    counter: { initial: 0 },
    'doc:{id}': {
      initial: { title: '' },
      authorize: ({ params, principal, action, storeKey }) => {
        expectTypeOf(params).toEqualTypeOf<{ id: string }>()
        expectTypeOf(action).toEqualTypeOf<'read' | 'write'>()
        expectTypeOf(storeKey).toEqualTypeOf<string>()
        return principal !== undefined && params.id !== ''
      },
    },
    'board:{boardId}:card:{cardId}': {
      initial: { text: '' },
      schema: v.object({ text: v.string() }),
      authorize: ({ params }) => {
        expectTypeOf(params).toEqualTypeOf<{ boardId: string; cardId: string }>()
        // @ts-expect-error: the pattern has no `id`
        return params.id !== undefined
      },
    },
    settings: {
      initial: { dark: false },
      // An exact store's rule has no parameters.
      authorize: ({ params }) => {
        expectTypeOf(params).toEqualTypeOf<{}>()
        return true
      },
    },
  },
  actions: {
    rename: {
      args: v.object({ id: v.string(), title: v.string() }),
      run: (tx, { id, title }) => {
        expectTypeOf(tx.get(`doc:${id}`)).toEqualTypeOf<{ title: string }>()
        tx.set(`doc:${id}`, (doc) => ({ ...doc, title }))
        // @ts-expect-error: a doc has a string title
        tx.set('doc:1', { title: 1 })
        // @ts-expect-error: `page:1` is in no family of the app
        tx.set('page:1', { title })
      },
    },
  },
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('store family types', () => {
  it('turns a pattern into a template literal type, and its placeholders into parameters', () => {
    expectTypeOf<KeysOfPattern<'doc:{id}'>>().toEqualTypeOf<`doc:${string}`>()
    expectTypeOf<KeysOfPattern<'board:{boardId}:card:{cardId}'>>().toEqualTypeOf<`board:${string}:card:${string}`>()
    expectTypeOf<KeysOfPattern<'counter'>>().toEqualTypeOf<'counter'>()
    expectTypeOf<ParamsOfPattern<'board:{boardId}:card:{cardId}'>>().toEqualTypeOf<{ boardId: string; cardId: string }>()
    expectTypeOf<StatesOfApp<typeof app>>().toEqualTypeOf<{
      counter: number
      [key: `doc:${string}`]: { title: string }
      [key: `board:${string}:card:${string}`]: { text: string }
      settings: { dark: boolean }
    }>()
  })

  it("types a family's stores on the server and on a replica, and an unknown key stays an error", () => {
    const server = createUniverse({ app })
    const client = connect({ app, url: 'http://127.0.0.1:9/zuno', EventSource })
    cleanups.push(() => client.close(), () => server.close())
    expectTypeOf(server.store('doc:42')).toEqualTypeOf<Store<{ title: string }>>()
    expectTypeOf(client.store('board:1:card:2').get()).toEqualTypeOf<{ text: string }>()
    expectTypeOf(client.store('counter').get()).toEqualTypeOf<number>()
    // @ts-expect-error: `page:1` is in no family of the app
    expect(() => server.store('page:1')).not.toThrow()
    // @ts-expect-error: `page:1` is in no family of the app
    client.store('page:1')
    // Never called: what matters is that it does not compile.
    // @ts-expect-error: a doc's title is a string
    const wrongType = () => client.store('doc:1').set({ title: 1 })
    expect(typeof wrongType).toBe('function')
    // `initial` overrides of a family's store are typed by the family.
    // @ts-expect-error: a card's text is a string
    const wrongInitial = () => connect({ app, url: 'http://127.0.0.1:9/zuno', EventSource, initial: { 'board:1:card:1': { text: 1 } } })
    expect(typeof wrongInitial).toBe('function')
  })
})
