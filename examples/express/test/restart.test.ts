/**
 * Real network: the demo server in a child process, Node replicas on `eventsource`, the server
 * killed with SIGKILL mid-run and started again on the same port. The demo keeps its state in its
 * durable file log, so nothing acknowledged is lost; the replicas must ride out the outage,
 * re-propose what was still pending, and converge, with every op settled and none applied twice.
 */
import { EventSource } from 'eventsource'
import { afterAll, describe, expect, it } from 'vitest'
import { connect, type ReplicaUniverse } from 'zuno'
import { until } from '../../../packages/zuno/test/support/until'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { demoProcesses } from './support/demoProcess'

const demos = demoProcesses('restart')

const children: Array<Awaited<ReturnType<typeof demos.start>>> = []
const replicas: ReplicaUniverse[] = []
afterAll(() => {
  for (const replica of replicas) replica.close()
  demos.stop()
})

describe('replicas ride out a killed and restarted server', () => {
  it('settle every op, apply none twice, and converge', async () => {
    const port = await freePort()
    children.push(await demos.start(port))
    const url = `http://127.0.0.1:${port}/zuno`
    for (let i = 0; i < 4; i++) replicas.push(connect({ url, EventSource, maxAttempts: 1000 }))
    await until(() => replicas.every((replica) => replica.status.get() === 'connected'), 15_000)

    type Todo = { id: string; text: string; done: boolean }
    const outcomes: Array<{ id: string; settledAt: number; ok: boolean }> = []
    let restartedAt = Number.POSITIVE_INFINITY
    /** Ops each replica has had accepted. */
    const accepted = replicas.map(() => 0)
    const work = replicas.map(async (replica, i) => {
      const todos = replica.store<Todo[]>('todos', [])
      const counter = replica.store<number>('counter', 0)
      const pending: Array<Promise<unknown>> = []
      for (let k = 0; k < 40; k++) {
        const id = `${replica.clientId}-${k}`
        pending.push(counter.set((n) => n + 1).then(() => (accepted[i] = (accepted[i] ?? 0) + 1)))
        pending.push(
          todos.set((all) => [...all, { id, text: id, done: false }]).then(
            () => outcomes.push({ id, settledAt: Date.now(), ok: true }),
            () => outcomes.push({ id, settledAt: Date.now(), ok: false }),
          ),
        )
        await new Promise((resolve) => setTimeout(resolve, 5 + i))
      }
      return Promise.allSettled(pending)
    })

    // Kill the server hard in the middle of the load, then bring it back on the same port. Not
    // before every replica has had an op accepted: a client's first op in doubt, answered 409 by a
    // server with no record of the client, rejects `outcome_unknown` by design (the server cannot
    // tell "never applied" from "applied, client since forgotten"); packages/zuno/test/clientEdges.test.ts covers that.
    await until(() => outcomes.length >= 30 && accepted.every((count) => count > 0), 15_000)
    children[0]?.kill('SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 300))
    children.push(await demos.start(port))
    restartedAt = Date.now()

    const settled = (await Promise.all(work)).flat()
    expect(settled.filter((result) => result.status === 'rejected')).toEqual([])
    expect(outcomes.every((outcome) => outcome.ok)).toBe(true)

    const server = async () => (await (await fetch(`${url}/state`)).json()) as {
      stores: { counter: { version: number; state: number }; todos: { version: number; state: Todo[] } }
    }
    const { stores } = await server()
    // Every increment that reached the restarted server was counted on the right base.
    expect(stores.counter.state).toBe(stores.counter.version)
    // Every todo ever acknowledged, before the kill or after, is there, once: nothing was lost.
    const ids = stores.todos.state.map((todo) => todo.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(outcomes.filter((o) => o.settledAt > restartedAt).length).toBeGreaterThan(0) // the kill came mid-load
    expect(ids.sort()).toEqual(outcomes.map((o) => o.id).sort())
    expect(stores.counter.state).toBe(160)
    // And every replica shows exactly the server's state.
    await until(
      () =>
        replicas.every(
          (replica) =>
            replica.store('counter').version === stores.counter.version &&
            replica.store('todos').version === stores.todos.version &&
            JSON.stringify(replica.store('todos').get()) === JSON.stringify(stores.todos.state),
        ),
      15_000,
    )
  })
})
