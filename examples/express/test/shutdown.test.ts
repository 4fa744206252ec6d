/**
 * Graceful shutdown under load: the demo server (file storage) gets SIGTERM in the middle of a
 * burst of proposals. No client may see a reset connection: every request is answered 200 or 409,
 * or 503 `shutting_down` in JSON. The process exits 0, and after a restart on the same folder every
 * acknowledged write is there.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { epochOf, rawProposal } from '../../../packages/zuno/test/support/rawProposal'
import { until } from '../../../packages/zuno/test/support/until'
import { demoProcesses } from './support/demoProcess'

const demos = demoProcesses('sigterm')
afterAll(() => {
  demos.stop()
})

type Todo = { id: string; text: string; done: boolean }

describe('SIGTERM during a burst of proposals', () => {
  it('answers every request (200, 409 or 503 JSON, never a reset), exits 0 and keeps every acknowledged write', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/zuno`
    const server = await demos.start(port)
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)))

    const epoch = await epochOf(url)
    const acknowledged: string[] = []
    const unexpected: unknown[] = []
    // Each client appends its own todos to one list, read-modify-write, until the server says it is going.
    const client = async (name: string) => {
      let version = 0
      let todos: Todo[] = []
      for (let k = 0; ; k++) {
        const id = `${name}-${k}`
        for (;;) {
          let response: Response
          try {
            response = await fetch(`${url}/sync`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              // Each attempt is the first op of a fresh client: raw writers keep no queue.
              body: rawProposal(epoch, { storeKey: 'todos', baseVersion: version, state: [...todos, { id, text: id, done: false }] }),
            })
          } catch (error) {
            unexpected.push(error)
            return
          }
          const body = (await response.json().catch(() => undefined)) as { version: number; state: Todo[]; error?: string } | undefined
          if (response.status === 503 && body?.error === 'shutting_down') return
          if (response.status !== 200 && response.status !== 409) {
            unexpected.push({ status: response.status, body })
            return
          }
          if (body === undefined) return void unexpected.push({ status: response.status, body: 'not JSON' })
          version = body.version
          todos = body.state
          if (response.status === 200) {
            acknowledged.push(id)
            break
          }
        }
        // Stay under the demo's default rate (50 proposals a second per address).
        await new Promise((resolve) => setTimeout(resolve, 60))
      }
    }
    const clients = Array.from({ length: 3 }, (_, i) => client(`c${i}`))
    await until(() => acknowledged.length >= 15, 15_000)
    server.kill('SIGTERM')
    await Promise.all(clients)
    expect(unexpected).toEqual([])
    expect(await exited).toBe(0)

    await demos.start(port)
    const answer = (await (await fetch(`${url}/state?stores=todos`)).json()) as { stores: { todos: { state: Todo[] } } }
    const kept = new Set(answer.stores.todos.state.map((todo) => todo.id))
    expect(acknowledged.filter((id) => !kept.has(id))).toEqual([])
  }, 60_000)
})
