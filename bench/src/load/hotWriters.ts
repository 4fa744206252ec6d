/**
 * Contention: writers that each increment a counter as fast as they can. `shared` puts all of them
 * on one store; otherwise each has its own (the uncontended rate). Two kinds of writer:
 * - `replica`: Zuno's own client (`connect`), awaiting `store.set(n => n + 1)`; it rebases on the
 *   state a 409 carries and retries after a short jittered backoff, giving up after 10 conflicts;
 * - `protocol`: a bare loop over one keep-alive connection that rebases and retries at once;
 * - `actionLoop`: the same loop sending the server's `increment` action instead of a state;
 * - `replicaActions`: Zuno's client again, awaiting `act('increment', { key })`.
 */
import { Agent } from 'node:http'
import { EventSource } from 'eventsource'
import { connect, newClientId } from 'zuno'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { epochAt } from './epoch'
import { postSync } from './postSync'

interface Answer {
  status: number
  body: { version: number; state: number }
}

async function post(agent: Agent, port: number, payload: string): Promise<Answer> {
  const { status, text } = await postSync(agent, port, payload)
  return { status, body: JSON.parse(text) as Answer['body'] }
}

/** Writers through Zuno's client: attempts per write are 1 + the conflicts it reports. With `actions`, each write is the server's `increment` action instead of a `set`. */
async function runReplicas(port: number, writers: number, shared: boolean, label: string, durationMs: number, actions = false): Promise<void> {
  const replicas = Array.from({ length: writers }, () => {
    const conflicts = new Map<number, number>()
    const universe = connect({
      url: `http://127.0.0.1:${port}/zuno`,
      EventSource,
      onConflict: ({ opId }) => conflicts.set(opId, (conflicts.get(opId) ?? 0) + 1),
    })
    return { universe, conflicts }
  })
  await Promise.all(replicas.map(({ universe }) => waitConnected(universe)))
  const deadline = monotonicMs() + durationMs
  const attempts: number[] = []
  let gaveUp = 0
  const started = monotonicMs()
  await Promise.all(
    replicas.map(async ({ universe, conflicts }, index) => {
      const key = shared ? `${label}hot` : `${label}own${index}`
      const counter = universe.store<number>(key, 0)
      while (monotonicMs() < deadline) {
        try {
          if (actions) await universe.act('increment', { key })
          else await counter.set((n) => (n ?? 0) + 1)
          // One op per write, awaited: the conflicts reported since the last write are its own.
          attempts.push(1 + [...conflicts.values()].reduce((a, b) => a + b, 0))
        } catch {
          gaveUp += 1
        }
        conflicts.clear()
      }
    }),
  )
  const seconds = (monotonicMs() - started) / 1000
  for (const { universe } of replicas) universe.close()
  report({ type: 'result', accepted: attempts.length, seconds, attempts, unexpected: 0, gaveUp })
}

/**
 * Writers that send the `increment` action over one keep-alive connection each, one at a time, to
 * the servers on `ports` in turn (writer i to the i-th, round robin): the server runs it on its own
 * state, so every attempt is accepted; anything else is counted as unexpected.
 */
async function runActionLoop(ports: number[], writers: number, shared: boolean, label: string, durationMs: number): Promise<void> {
  const deadline = monotonicMs() + durationMs
  const attempts: number[] = []
  let unexpected = 0
  const epoch = await epochAt(ports[0] as number)
  const writer = async (index: number) => {
    const port = ports[index % ports.length] as number
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const clientId = newClientId()
    const key = shared ? `${label}hot` : `${label}w${index}own`
    let opId = 0
    while (monotonicMs() < deadline) {
      opId += 1
      const answer = await post(agent, port, JSON.stringify({ action: 'increment', args: { key }, epoch, clientId, opId }))
      if (answer.status === 200) attempts.push(1)
      else unexpected += 1
    }
    agent.destroy()
  }
  const started = monotonicMs()
  await Promise.all(Array.from({ length: writers }, (_, i) => writer(i)))
  report({ type: 'result', accepted: attempts.length, seconds: (monotonicMs() - started) / 1000, attempts, unexpected, gaveUp: unexpected })
}

function waitConnected(universe: ReturnType<typeof connect>): Promise<void> {
  return new Promise((resolve) => {
    if (universe.status.get() === 'connected') return resolve()
    const stop = universe.status.subscribe((status) => {
      if (status === 'connected') {
        stop()
        resolve()
      }
    })
  })
}

onCommand(async (command) => {
  if (command.type !== 'run') return
  if (command.client === 'replica' || command.client === 'replicaActions') {
    const actions = command.client === 'replicaActions'
    return runReplicas(command.port as number, command.writers as number, command.shared as boolean, command.label as string, command.durationMs as number, actions)
  }
  if (command.client === 'actionLoop' || command.client === 'actionLoopRedis') {
    const ports = (command.ports as number[] | undefined) ?? [command.port as number]
    return runActionLoop(ports, command.writers as number, command.shared as boolean, command.label as string, command.durationMs as number)
  }
  const port = command.port as number
  const writers = command.writers as number
  const deadline = monotonicMs() + (command.durationMs as number)
  const attempts: number[] = []
  let unexpected = 0
  const epoch = await epochAt(port)
  const writer = async (index: number) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const clientId = newClientId()
    const storeKey = command.shared ? `${command.label as string}hot` : `${command.label as string}w${index}own`
    let version = 0
    let state = 0
    let opId = 0
    while (monotonicMs() < deadline) {
      // A 409 leaves the op's id free: the rebased attempt goes under the same one.
      opId += 1
      for (let attempt = 1; ; attempt++) {
        const answer = await post(agent, port, JSON.stringify({ storeKey, baseVersion: version, epoch, state: state + 1, clientId, opId }))
        if (answer.status === 200 || answer.status === 409) {
          version = answer.body.version
          state = answer.body.state ?? 0
        } else {
          unexpected += 1
        }
        if (answer.status === 200) {
          attempts.push(attempt)
          break
        }
      }
    }
    agent.destroy()
  }
  const started = monotonicMs()
  await Promise.all(Array.from({ length: writers }, (_, i) => writer(i)))
  report({ type: 'result', accepted: attempts.length, seconds: (monotonicMs() - started) / 1000, attempts, unexpected })
})
report({ type: 'ready' })
