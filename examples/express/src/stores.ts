/** One todo item of the demo. */
export interface Todo {
  id: string
  text: string
  done: boolean
}

/** The demo's stores and their initial states. */
export const demoStores = { counter: 0, todos: [] as Todo[] }
