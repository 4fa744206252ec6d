import { type FormEvent, useEffect, useState } from 'react'
import { useConnectionStatus } from 'zuno-react'
import { useStore, useStoreApi } from './zuno'

export function App() {
  return (
    <main>
      <Hello />
      <Counter />
      <Todos />
      <p>
        Zuno: <span data-testid="status">{useConnectionStatus()}</span>
      </p>
    </main>
  )
}

/** The app's own API, unchanged by Zuno. */
function Hello() {
  const [message, setMessage] = useState('…')
  useEffect(() => {
    void fetch('/api/hello')
      .then((response) => response.json() as Promise<{ message: string }>)
      .then((body) => setMessage(body.message))
  }, [])
  return <h1 data-testid="hello">{message}</h1>
}

function Counter() {
  const count = useStore('counter')
  const counter = useStoreApi('counter')
  return (
    <p>
      <span data-testid="counter">{count}</span>{' '}
      <button type="button" data-testid="increment" onClick={() => void counter.set((n) => n + 1)}>
        +1
      </button>
    </p>
  )
}

function Todos() {
  const todos = useStore('todos')
  const list = useStoreApi('todos')
  const add = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const input = event.currentTarget.elements.namedItem('text') as HTMLInputElement
    const text = input.value.trim()
    input.value = ''
    if (text !== '') void list.set((items) => [...items, { id: crypto.randomUUID(), text }])
  }
  return (
    <form onSubmit={add}>
      <input name="text" placeholder="Add a todo" />
      <button type="submit">Add</button>
      <ul data-testid="todos">
        {todos.map((todo) => (
          <li key={todo.id}>{todo.text}</li>
        ))}
      </ul>
    </form>
  )
}
