/** The app's stores, defined once: the server's universe and the page's replica both read them. */
import { defineZuno } from 'zuno'

export interface Todo {
  id: string
  text: string
}

export const app = defineZuno({
  stores: {
    counter: { initial: 0 },
    todos: { initial: [] as Todo[] },
  },
})
