import * as v from 'valibot'
import type { StatesOf } from 'zuno'

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
