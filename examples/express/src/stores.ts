import * as v from 'valibot'
import { defineZuno, refuseAction, type StatesOf } from 'zuno'

/** The longest todo text the page's input accepts, and the most todos the list may hold. */
export const MAX_TODO_TEXT = 200
export const MAX_TODOS = 1000

/** One todo item of the demo: exactly these fields. */
const todoSchema = v.strictObject({
  id: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  text: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TODO_TEXT)),
  done: v.boolean(),
})

/**
 * What the demo's stores may hold (Standard Schema, checked on every write by the server and,
 * before sending, by the page): the server refuses anything else with 422 `invalid_state`.
 */
export const demoSchemas = {
  counter: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
  todos: v.pipe(v.array(todoSchema), v.maxLength(MAX_TODOS)),
}

/** The states of the demo's stores, as the schemas describe them. */
export type DemoStates = StatesOf<typeof demoSchemas>

/** One todo item of the demo. */
export type Todo = v.InferOutput<typeof todoSchema>

/** The demo's stores and their initial states. */
export const demoStores = { counter: 0, todos: [] as Todo[] }

/**
 * The demo's app: its stores with their schemas, and the two actions its buttons run (+1, and
 * "Add" a todo). The server runs them on its own state, so clicks in many tabs at once all count and
 * never conflict; ticking a todo stays a plain `set` of the list, which conflicts only with a tick of
 * the same todo (the page lists those conflicts): ticks of two todos merge.
 */
export const demoApp = defineZuno({
  stores: {
    counter: { initial: demoStores.counter, schema: demoSchemas.counter },
    // Todos are identified by `id`: ticking one goes as a patch, and ticks of two todos merge.
    todos: { initial: demoStores.todos, schema: demoSchemas.todos, ids: { '': 'id' }, merge: true },
  },
  actions: {
    increment: { run: (tx) => tx.set('counter', (n) => n + 1) },
    addTodo: {
      args: v.strictObject({ id: todoSchema.entries.id, text: todoSchema.entries.text }),
      run: (tx, { id, text }) => {
        const todos = tx.get('todos')
        if (todos.length >= MAX_TODOS) refuseAction(`The list holds ${MAX_TODOS} todos at most`)
        if (todos.some((todo) => todo.id === id)) return // added already
        tx.set('todos', [...todos, { id, text, done: false }])
      },
    },
  },
})
