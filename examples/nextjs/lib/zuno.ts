import { defineZuno } from 'zuno'

export interface Todo {
  id: string
  text: string
  done: boolean
}

// The stores, defined once: the server's universe and the browser's replica both read this.
export const app = defineZuno({
  stores: {
    counter: { initial: 0 },
    todos: { initial: [] as Todo[] },
  },
})
