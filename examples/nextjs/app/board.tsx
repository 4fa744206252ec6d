'use client'

import { type FormEvent, useState } from 'react'
import { useConnectionStatus } from 'zuno-react'
import { useStore, useStoreApi } from '../lib/zuno-hooks'

// A refused write rejects its promise; the store shows the server's state again either way.
const ignore = () => {}

export function Status() {
  const status = useConnectionStatus()
  return (
    <p data-testid="connection-status" data-status={status}>
      {status}
    </p>
  )
}

export function Counter() {
  const count = useStore('counter')
  const counter = useStoreApi('counter')
  return (
    <p>
      <span data-testid="counter-value">{count}</span>{' '}
      <button type="button" data-testid="counter-increment" onClick={() => counter.set((n) => n + 1).catch(ignore)}>
        +1
      </button>
    </p>
  )
}

export function Todos() {
  const todos = useStore('todos')
  const store = useStoreApi('todos')
  const [text, setText] = useState('')
  const add = (event: FormEvent) => {
    event.preventDefault()
    const todo = { id: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`, text: text.trim(), done: false }
    if (todo.text === '') return
    store.set((all) => [...all, todo]).catch(ignore)
    setText('')
  }
  const toggle = (id: string) => store.set((all) => all.map((t) => (t.id === id ? { ...t, done: !t.done } : t))).catch(ignore)
  return (
    <section>
      <form onSubmit={add}>
        <input name="text" value={text} onChange={(event) => setText(event.target.value)} placeholder="Something to do" />
        <button type="submit">Add</button>
      </form>
      <ul data-testid="todo-list">
        {todos.map((todo) => (
          <li key={todo.id}>
            <label>
              <input type="checkbox" checked={todo.done} onChange={() => toggle(todo.id)} /> {todo.text}
            </label>
          </li>
        ))}
      </ul>
    </section>
  )
}
