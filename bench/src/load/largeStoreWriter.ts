/**
 * The large-store suite's writer, and the replica that measures an upload per click.
 *
 * `commit` runs the writer: one keep-alive connection, one proposal at a time, each on the version
 * the last one committed. A todo commit toggles one item, as a click does, sent either as the
 * patch Zuno's client makes of that toggle (`patch`) or as the whole list (`whole`: what a client
 * sent before deltas, and what leaves the server no patch to stream); a counter commit sends the
 * next number (a counter's state is shorter than any patch of it). It reports when each proposal
 * went and the version it made.
 *
 * `upload` starts a real replica (`connect`, the `eventsource` package), toggles one todo through
 * `store.set` with a structural-sharing updater, and reports the body it POSTed.
 */
import { Agent } from 'node:http'
import { EventSource } from 'eventsource'
import { connect, newClientId } from 'zuno'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { epochAt } from './epoch'
import { postSync } from './postSync'
import { type Todo, todoApp, todoToToggle, toggle } from './todoApp'

const agent = new Agent({ keepAlive: true, maxSockets: 1 })
const clientId = newClientId()
let opId = 0
let epoch = ''
/** What the writer knows the server holds: it is the only writer while it runs. */
const known = { todos: { version: 0, state: [] as Todo[] }, counter: { version: 0, state: 0 } }
let clicks = 0

function post(port: number, payload: string): Promise<{ status: number; text: string }> {
  return postSync(agent, port, payload)
}

/** Reads the stores' current versions and states, as a client starting up would. */
async function load(port: number): Promise<void> {
  epoch = await epochAt(port)
  const response = await fetch(`http://127.0.0.1:${port}/zuno/state`)
  const { stores } = (await response.json()) as { stores: Record<string, { version: number; state: unknown }> }
  known.todos = { version: stores.todos?.version ?? 0, state: (stores.todos?.state ?? todoApp.stores.todos.initial) as Todo[] }
  known.counter = { version: stores.counter?.version ?? 0, state: (stores.counter?.state ?? 0) as number }
}

/** One commit: what it sends, given the store's version. */
function nextBody(store: 'todos' | 'counter', mode: 'patch' | 'whole'): { payload: string; apply: () => void } {
  opId += 1
  if (store === 'counter') {
    const state = known.counter.state + 1
    const payload = JSON.stringify({ storeKey: 'counter', baseVersion: known.counter.version, epoch, state, clientId, opId })
    return { payload, apply: () => (known.counter.state = state) }
  }
  clicks += 1
  const id = todoToToggle(clicks)
  const state = toggle(known.todos.state, id)
  const baseVersion = known.todos.version
  // The patch Zuno's client makes of this toggle (the `upload` replica shows it sends the same).
  const done = (state.find((todo) => todo.id === id) as Todo).done
  const payload =
    mode === 'patch'
      ? JSON.stringify({ storeKey: 'todos', baseVersion, epoch, patch: [[[{ id }, 'done'], done]], clientId, opId })
      : JSON.stringify({ storeKey: 'todos', baseVersion, epoch, state, clientId, opId })
  return { payload, apply: () => (known.todos.state = state) }
}

async function commit(port: number, store: 'todos' | 'counter', mode: 'patch' | 'whole', count: number): Promise<void> {
  const sentAt: number[] = []
  const versions: number[] = []
  const uploadBytes: number[] = []
  for (let i = 0; i < count; i++) {
    const { payload, apply } = nextBody(store, mode)
    sentAt.push(monotonicMs())
    const answer = await post(port, payload)
    if (answer.status !== 200) throw new Error(`${store} (${mode}) answered ${answer.status}: ${answer.text.slice(0, 300)}`)
    // The answer's version field comes first after `ok` and `storeKey`: no need to parse a whole state back.
    const versionAt = answer.text.indexOf('"version":')
    const version = Number.parseInt(answer.text.slice(versionAt + 10, versionAt + 30), 10)
    apply()
    known[store].version = version
    versions.push(version)
    uploadBytes.push(Buffer.byteLength(payload))
  }
  report({ type: 'committed', sentAt, versions, uploadBytes })
}

/** A replica toggles one todo as an app would; the bodies it POSTs to `/sync` are what it uploads. */
async function upload(port: number): Promise<void> {
  const bodies: string[] = []
  const recordingFetch: typeof fetch = (input, init) => {
    if (String(input).endsWith('/sync') && typeof init?.body === 'string') bodies.push(init.body)
    return fetch(input, init)
  }
  const universe = connect({ app: todoApp, url: `http://127.0.0.1:${port}/zuno`, EventSource, fetch: recordingFetch })
  try {
    const todos = universe.store('todos')
    // Connected: the stream's snapshot has brought the server's list.
    await new Promise<void>((resolve) => {
      if (universe.status.get() === 'connected') return resolve()
      const stop = universe.status.subscribe((status) => {
        if (status !== 'connected') return
        stop()
        resolve()
      })
    })
    const id = todoToToggle(0)
    const started = monotonicMs()
    await todos.set((list) => toggle(list, id))
    const ms = monotonicMs() - started
    const sent = bodies.at(-1)
    if (sent === undefined) throw new Error('the replica POSTed nothing')
    // The same body with the whole list in place of the patch: what the client sent before deltas (and sends after a `patch_mismatch`).
    const { patch, ...rest } = JSON.parse(sent) as Record<string, unknown>
    const whole = JSON.stringify({ ...rest, state: todos.get() })
    report({ type: 'uploaded', bytes: Buffer.byteLength(sent), wholeBytes: Buffer.byteLength(whole), patch: patch ?? null, posts: bodies.length, ms })
  } finally {
    universe.close()
  }
}

onCommand(async (command) => {
  const port = command.port as number
  if (command.type === 'load') {
    await load(port)
    report({ type: 'loaded', todosVersion: known.todos.version, counterVersion: known.counter.version })
  } else if (command.type === 'commit') {
    await commit(port, command.store as 'todos' | 'counter', command.mode as 'patch' | 'whole', command.count as number)
  } else if (command.type === 'upload') {
    await upload(port)
  }
})
report({ type: 'ready' })
