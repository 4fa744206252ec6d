/**
 * Edges of `defineZuno` found in review: a schema decides a store's type (an initial state that is
 * not of it does not compile), an initial state must pass its schema, overrides are typed, and
 * `schemas` beside `app` is refused rather than dropped.
 */
import { EventSource } from 'eventsource'
import * as v from 'valibot'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { connect, defineZuno, type StatesOfApp } from 'zuno'
import { createUniverse } from 'zuno/server'

const url = 'http://127.0.0.1:9/zuno'

describe('defineZuno, at the edges', () => {
  it('types a store from its schema, not from its initial state', () => {
    const Todo = v.object({ id: v.string(), done: v.boolean() })
    const app = defineZuno({
      stores: {
        counter: { initial: 0 },
        todos: { initial: [], schema: v.array(Todo) },
        name: { initial: null, schema: v.nullable(v.string()) },
      },
    })
    expectTypeOf<StatesOfApp<typeof app>>().toEqualTypeOf<{ counter: number; todos: { id: string; done: boolean }[]; name: string | null }>()
    // @ts-expect-error: the schema holds numbers, so the initial state must be one
    const wrong = defineZuno({ stores: { counter: { initial: 'zero', schema: v.number() } } })
    expect(wrong.stores.counter.initial).toBe('zero')
  })

  it('refuses an initial state that does not pass its own schema, on the server and the client', () => {
    const app = defineZuno({ stores: { counter: { initial: -1, schema: v.pipe(v.number(), v.minValue(0)) } } })
    expect(() => createUniverse({ app })).toThrow(expect.objectContaining({ code: 'invalid_state' }))
    expect(() => connect({ app, url, EventSource })).toThrow(expect.objectContaining({ code: 'invalid_state' }))
  })

  it('types and checks the overrides of the initial states', () => {
    const app = defineZuno({ stores: { counter: { initial: 0, schema: v.pipe(v.number(), v.minValue(0)) } } })
    // @ts-expect-error: the counter holds numbers
    expect(() => createUniverse({ app, stores: { counter: 'one' } })).toThrow(expect.objectContaining({ code: 'invalid_state' }))
    // @ts-expect-error: the counter holds numbers
    expect(() => connect({ app, url, EventSource, initial: { counter: 'one' } })).toThrow(expect.objectContaining({ code: 'invalid_state' }))
    const server = createUniverse({ app, stores: { counter: 3 } })
    expect(server.store('counter').get()).toBe(3)
    server.close()
  })

  it('refuses `schemas` beside `app` instead of dropping them', () => {
    const app = defineZuno({ stores: { counter: { initial: 0 } } })
    const options = { app, schemas: { counter: v.string() } }
    expect(() => createUniverse(options)).toThrow(TypeError)
    expect(() => connect({ ...options, url, EventSource })).toThrow(TypeError)
  })
})
