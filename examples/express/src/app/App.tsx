import { type FormEvent, useState, useSyncExternalStore } from 'react'
import { type ReadableValue, type ZunoError } from 'zuno'
import { useAction, useConnectionStatus, useLastError, usePendingCount, useStore, useStoreApi, useStoreVersion } from 'zuno-react'
import type { Todo } from '../stores'
import { ERROR_HEADINGS, errorKind } from './errorKind'
import { CursorBoard, Online } from './Presence'

/** A conflict as the page lists it. */
export interface ConflictNote {
  id: number
  text: string
}

const none: ConflictNote[] = []
const noConflicts: ReadableValue<ConflictNote[]> = { get: () => none, subscribe: () => () => {} }

/** The demo page; rendered on the server, hydrated in the browser. */
export function App({ conflicts = noConflicts }: { conflicts?: ReadableValue<ConflictNote[]> }) {
  return (
    <main>
      <h1>Zuno</h1>
      <p className="hint" data-testid="hint">
        Open this page in a second tab and click: both stay in sync through the server.
      </p>
      <Status />
      <Counter />
      <Online />
      <Todos />
      <Conflicts conflicts={conflicts} />
      <LastProblem />
    </main>
  )
}

function Status() {
  const status = useConnectionStatus()
  const pending = usePendingCount()
  return (
    <p className="status" data-testid="connection-status" data-status={status}>
      <span className="dot" />
      <span>{status}</span>
      <span className="meta" data-testid="pending-count" data-pending={pending}>
        {pending === 0 ? 'all saved' : `${pending} pending`}
      </span>
    </p>
  )
}

function Counter() {
  const value = useStore<number>('counter')
  // An action: the server adds one to whatever the counter holds then, so concurrent clicks all count.
  const increment = useAction('increment')
  return (
    <section className="counter">
      <span data-testid="counter-value">{value}</span>
      <button className="primary" data-testid="counter-increment" onClick={() => increment.run()}>
        +1
      </button>
      <span className="meta" data-testid="counter-version">
        version {useStoreVersion('counter')}
      </span>
    </section>
  )
}

function Todos() {
  const todos = useStore<Todo[]>('todos')
  const store = useStoreApi<Todo[]>('todos', [])
  const addTodo = useAction('addTodo')
  const [text, setText] = useState('')
  const add = (event: FormEvent) => {
    event.preventDefault()
    const trimmed = text.trim()
    if (!trimmed) return
    const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`
    addTodo.run({ id, text: trimmed })
    setText('')
  }
  const toggle = (id: string) =>
    void store.set((all) => all.map((todo) => (todo.id === id ? { ...todo, done: !todo.done } : todo))).catch(() => {})
  return (
    <section>
      <form data-testid="todo-form" onSubmit={add}>
        <input
          type="text"
          name="text"
          placeholder="Something to do"
          maxLength={200}
          autoComplete="off"
          value={text}
          onChange={(event) => setText(event.target.value)}
        />
        <button type="submit">Add</button>
      </form>
      <CursorBoard>
        <ul data-testid="todo-list">
          {todos.map((todo) => (
            <li key={todo.id} className={todo.done ? 'done' : ''}>
              <input type="checkbox" checked={todo.done} onChange={() => toggle(todo.id)} />
              <span>{todo.text}</span>
            </li>
          ))}
        </ul>
      </CursorBoard>
    </section>
  )
}

function Conflicts({ conflicts }: { conflicts: ReadableValue<ConflictNote[]> }) {
  // The server lists none: hydration starts from none too, and the page's own follow right after.
  const notes = useSyncExternalStore(conflicts.subscribe, conflicts.get, noConflicts.get)
  const lastError: ZunoError | undefined = useLastError()
  // Only a conflict belongs here; other errors have their own section (LastProblem).
  const error = lastError !== undefined && errorKind(lastError) === 'conflict' ? lastError : undefined
  if (notes.length === 0 && error === undefined) return null
  return (
    <section className="conflicts" data-testid="conflicts">
      <h2>Conflicts, as they happen</h2>
      <ul>
        {notes.slice(-5).map((note) => (
          <li key={note.id}>{note.text}</li>
        ))}
      </ul>
      {error ? <p className="meta">last error: {error.code}</p> : null}
    </section>
  )
}

/** The last error that is not a conflict, under a heading that says what kind it is. */
function LastProblem() {
  const error: ZunoError | undefined = useLastError()
  if (error === undefined) return null
  const kind = errorKind(error)
  if (kind === 'conflict') return null
  return (
    <section className={`problem ${kind}`} data-testid="last-error" data-kind={kind}>
      <h2>{ERROR_HEADINGS[kind]}</h2>
      <p className="meta">last error: {error.code}</p>
    </section>
  )
}
