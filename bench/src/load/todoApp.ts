/**
 * The large-store suite's app, shared by its server, its writer and its replica: a todo list of
 * 10,000 items (about 1 MB of JSON) whose items are addressed by id and whose disjoint edits
 * merge, and a counter, the tiny store it is compared with.
 */
import { defineZuno } from 'zuno'

/** One todo. Every item has the same JSON length, so the list's size is exact. */
export interface Todo {
  id: string
  title: string
  done: boolean
  notes: string
}

export const TODO_COUNT = 10_000
/** Each item's JSON length, its comma included: 10,000 × 100 bytes + 1 = 1,000,001 bytes for the list. */
const ITEM_BYTES = 100
const FILLER = 'Call the supplier back, compare both quotes, then write down what was agreed and when. '

/** The list at version 0, the same in every process. */
export function initialTodos(): Todo[] {
  return Array.from({ length: TODO_COUNT }, (_, i) => {
    const number = String(i + 1).padStart(5, '0')
    const item: Todo = { id: `todo-${number}`, title: `Task ${number} of the big list`, done: false, notes: '' }
    const room = ITEM_BYTES - 1 - JSON.stringify(item).length
    item.notes = FILLER.repeat(2).slice(i % FILLER.length, (i % FILLER.length) + room)
    return item
  })
}

export const todoApp = defineZuno({
  stores: {
    todos: { initial: initialTodos(), ids: { '': 'id' }, merge: true },
    counter: { initial: 0 },
  },
})

/** The id of the todo that commit number `n` toggles: spread over the list, not the same few. */
export function todoToToggle(n: number): string {
  return `todo-${String(((n * 7919) % TODO_COUNT) + 1).padStart(5, '0')}`
}

/** What a user's app does on a click: flip one todo, sharing every other item with the list before. */
export function toggle(list: readonly Todo[], id: string): Todo[] {
  return list.map((todo) => (todo.id === id ? { ...todo, done: !todo.done } : todo))
}
