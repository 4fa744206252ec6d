/**
 * Review probes of the action types a new user meets (issue #15). Compiled by `tsc -p tsconfig.json`;
 * each `@ts-expect-error` marked "problem" shows a documented use the types refuse.
 */
import * as v from 'valibot'
import { describe, expect, it } from 'vitest'
import { connect, defineZuno, refuseAction } from 'zuno'
import { createUniverse } from 'zuno/server'
import { EventSource } from 'eventsource'

interface Todo {
  id: string
  text: string
}

const app = defineZuno({
  stores: { inbox: { initial: [] as Todo[] }, done: { initial: [] as Todo[] }, moves: { initial: 0 } },
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
    'todos/add': { args: v.object({ text: v.string() }), run: (tx, { text }) => tx.set('inbox', (items) => [...items, { id: text, text }]) },
  },
})

describe('review: action types', () => {
  it('types the documented uses', async () => {
    const universe = createUniverse({
      app,
      actions: {
        finish: (tx, { id }, { principal }) => {
          if (principal === undefined) return
          tx.set('inbox', (items) => items.filter((item) => item.id !== id))
        },
      },
    })
    // problem 10: docs/actions.md "An action that exists only on the server (not in the app) gets its
    // arguments as sent": with `app`, the types refuse one (excess property `purge`).
    const withServerOnly = () =>
      // @ts-expect-error problem 10
      createUniverse({ app, actions: { purge: (tx) => tx.set('inbox', []) } })
    void withServerOnly
    await universe.ready
    await universe.act('finish', { id: 'none' }).catch(() => {})
    // @ts-expect-error problem 10: and server code cannot call it typed either
    const callPurge = () => universe.act('purge')
    void callPurge
    expect(universe.store('inbox').get()).toEqual([])
    // problem 11: a name defineZuno accepts and server code runs, which connect().act refuses at run time.
    await universe.act('todos/add', { text: 'a' })
    expect(universe.store('inbox').get()).toEqual([{ id: 'a', text: 'a' }])
    const replica = connect({ url: 'http://127.0.0.1:9/zuno', app, tabs: false, EventSource })
    const refused = await replica.act('todos/add', { text: 'b' }).then(() => 'queued', (error: { code: string }) => error.code)
    replica.close()
    expect(refused).toBe('invalid_action')
    await universe.close()
  })
})
