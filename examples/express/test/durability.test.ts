/**
 * The demo's embedded storages under a real crash: the demo server (SQLite, its default, and the
 * file log of `ZUNO_STORAGE=file`; both durable before every acknowledgement) is killed with
 * SIGKILL during a write load and restarted on the same folder. Every acknowledged write must be
 * there, and versions must continue from where they were.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { freePort } from '../../../packages/zuno/test/support/freePort'
import { epochOf, rawProposal } from '../../../packages/zuno/test/support/rawProposal'
import { demoProcesses } from './support/demoProcess'

describe.each(['sqlite', 'file'])('the demo on ZUNO_STORAGE=%s', (storage) => {
  const demos = demoProcesses(`durable-${storage}`, { env: { ZUNO_STORAGE: storage } })
  afterAll(() => {
    demos.stop()
  })

  it('keeps every acknowledged write through kill -9, and versions continue', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}/zuno`
    const server = await demos.start(port)
    expect(server.output()).toContain(storage === 'sqlite' ? '(SQLite)' : '(file log)')

    // Four writers append to the todo list with compare-and-set, as fast as they can.
    const acknowledged: Array<{ id: string; version: number }> = []
    let killed = false
    const epoch = await epochOf(url)
    // Each attempt is the first op of a fresh client: a client's ids must stay contiguous, and these raw writers keep no queue.
    const writer = async (name: string) => {
      let base = 0
      let list: Array<{ id: string }> = []
      for (let k = 0; !killed; k++) {
        const id = `${name}-${k}`
        try {
          const response = await fetch(`${url}/sync`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: rawProposal(epoch, { storeKey: 'todos', baseVersion: base, state: [...list, { id, text: id, done: false }] }),
          })
          const body = (await response.json()) as { version: number; state: Array<{ id: string }> }
          if (response.status === 429) {
            // The server's per-client rate limit: wait as told.
            await new Promise((resolve) => setTimeout(resolve, Number(response.headers.get('retry-after') ?? 1) * 1000))
            continue
          }
          if (response.status === 200) acknowledged.push({ id, version: body.version })
          base = body.version
          list = body.state
        } catch {
          return // the server is gone
        }
      }
    }
    const writers = ['w1', 'w2', 'w3', 'w4'].map(writer)
    const deadline = Date.now() + 20_000
    while (acknowledged.length < 150 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(acknowledged.length).toBeGreaterThanOrEqual(150)
    killed = true
    const exited = new Promise((resolve) => server.once('exit', resolve))
    server.kill('SIGKILL')
    await Promise.all([exited, ...writers])

    await demos.start(port)
    const state = (await (await fetch(`${url}/state`)).json()) as {
      stores: { todos: { version: number; state: Array<{ id: string }> } }
    }
    const ids = new Set(state.stores.todos.state.map((todo) => todo.id))
    const missing = acknowledged.filter((write) => !ids.has(write.id))
    expect(missing).toEqual([])
    const lastAcknowledged = Math.max(...acknowledged.map((write) => write.version))
    expect(state.stores.todos.version).toBeGreaterThanOrEqual(lastAcknowledged)
    // Versions continue: the next write lands on the version after the recovered one.
    const next = await fetch(`${url}/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: rawProposal(await epochOf(url), { storeKey: 'todos', baseVersion: state.stores.todos.version, state: [] }),
    })
    expect(((await next.json()) as { version: number }).version).toBe(state.stores.todos.version + 1)
  }, 60_000)
})
