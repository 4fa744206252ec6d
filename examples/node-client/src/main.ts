/**
 * A terminal replica of the demo: a Node.js process is a replica like any browser tab.
 * Keys: space or + increments, t adds a todo, q quits. Kill and restart the demo server to
 * watch it go offline, queue, reconnect and catch up.
 */
import { emitKeypressEvents } from 'node:readline'
import { EventSource } from 'eventsource'
import { connect, type ZunoError } from 'zuno'

interface Todo {
  id: string
  text: string
  done: boolean
}

// The demo servers' own variables: a demo started with PORT=4000 is found with PORT=4000 here too.
const url = process.env.ZUNO_URL ?? `http://${process.env.HOST ?? '127.0.0.1'}:${process.env.PORT ?? 3000}/zuno`
const universe = connect({ url, EventSource })
const counter = universe.store<number>('counter', 0)
const todos = universe.store<Todo[]>('todos', [])
const interactive = process.stdin.isTTY === true
let added = 0

function render(): void {
  const error = universe.lastError.get()
  const lines = [
    `zuno replica ${universe.clientId} → ${url}`,
    `status   ${universe.status.get()}${universe.pending.get() ? `  (${universe.pending.get()} pending)` : ''}`,
    `counter  ${counter.get()}  (v${counter.version})`,
    `todos    ${todos.get().length}  (v${todos.version})`,
    ...todos
      .get()
      .slice(-5)
      .map((todo) => `  ${todo.done ? '[x]' : '[ ]'} ${todo.text}`),
    error ? `last error: ${error.code}: ${error.message}` : '',
    interactive ? 'space/+ increment · t add a todo · q quit' : '',
  ]
  if (interactive) process.stdout.write(`\x1b[2J\x1b[H${lines.join('\n')}\n`)
  else console.log(lines.slice(1, 4).join(' | '))
}

const report = (error: ZunoError) => {
  if (!interactive) console.error(`refused: ${error.code}`)
}

for (const source of [universe.status, universe.pending, universe.lastError]) source.subscribe(render)
counter.subscribe(render)
todos.subscribe(render)
render()

if (interactive) {
  emitKeypressEvents(process.stdin)
  process.stdin.setRawMode(true)
  process.stdin.on('keypress', (text: string | undefined, key: { name?: string; ctrl?: boolean }) => {
    if (key.name === 'q' || (key.ctrl && key.name === 'c')) {
      universe.close()
      process.stdout.write('\n')
      process.exit(0)
    }
    if (text === ' ' || text === '+') counter.set((n) => n + 1).catch(report)
    if (key.name === 't') {
      added += 1
      const id = `${universe.clientId}-${added}`
      todos.set((all) => [...all, { id, text: `from the terminal #${added}`, done: false }]).catch(report)
    }
  })
}
