/**
 * The action types a new user meets (issue #15, review problems 10 and 11). Compiled by
 * `tsc -p tsconfig.json`: each `@ts-expect-error` is a use the types must refuse.
 */
import * as v from 'valibot'
import { describe, expect, it } from 'vitest'
import { defineZuno, refuseAction } from 'zuno'
import { createUniverse } from 'zuno/server'

interface Todo {
  id: string
  text: string
}

const app = defineZuno({
  stores: { inbox: { initial: [] as Todo[] }, done: { initial: [] as Todo[] } },
  actions: {
    finish: {
      args: v.object({ id: v.string() }),
      run: (tx, { id }) => {
        const todo = tx.get('inbox').find((item) => item.id === id)
        if (todo === undefined) refuseAction(`No todo ${id}`)
        tx.set('inbox', (items) => items.filter((item) => item.id !== id))
        tx.set('done', (items) => [...items, todo])
      },
    },
    /** Only the server runs it: declared here for its name and arguments, with a run that does nothing. */
    purge: { args: v.object({ all: v.boolean() }), run: () => {} },
  },
})

describe('action types', () => {
  it('types server implementations by the app, a server-only action declared in the app included', async () => {
    const universe = createUniverse({
      app,
      actions: {
        finish: (tx, { id }, { principal }) => {
          if (principal === undefined) return
          tx.set('inbox', (items) => items.filter((item) => item.id !== id))
        },
        purge: (tx, { all }) => {
          if (all) tx.set('inbox', [])
        },
      },
    })
    await universe.ready
    await universe.store('inbox').set([{ id: 'a', text: 'a' }])
    await universe.act('purge', { all: true })
    expect(universe.store('inbox').get()).toEqual([])
    // @ts-expect-error an action the app does not declare
    const unknown = () => universe.act('launch')
    // @ts-expect-error arguments of another type
    const wrong = () => universe.act('purge', { all: 'yes' })
    void unknown
    void wrong
    await universe.close()
  })

  it('refuses, where it is written, an action name no client could send', () => {
    expect(() => defineZuno({ stores: { inbox: { initial: 0 } }, actions: { 'todos/add': { run: () => {} } } })).toThrow(TypeError)
    expect(() => createUniverse({ actions: { 'bad name': () => {} } })).toThrow(TypeError)
  })
})
