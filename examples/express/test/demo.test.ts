import { EventSource } from 'eventsource'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { type DemoServer, startDemo } from '../src/demoServer'
import { until } from '../../../packages/zuno/test/support/until'
import { epochOf, rawProposal } from '../../../packages/zuno/test/support/rawProposal'

let demo: DemoServer
beforeAll(async () => {
  demo = await startDemo(0)
})
afterAll(() => demo.close())


describe('the Express demo', () => {
  it('renders the page on the server with the counter, the increment button, the status and the hint', async () => {
    await demo.universe.store('counter').set((n) => n + 2)
    const response = await fetch(`${demo.url}/`)
    expect(response.status).toBe(200)
    const html = await response.text()
    for (const testId of ['counter-value', 'counter-increment', 'connection-status', 'todo-list', 'hint']) {
      expect(html).toContain(`data-testid="${testId}"`)
    }
    expect(html).toContain('second tab')
    expect(html).toMatch(/data-testid="counter-value">2</)
    expect(html).toMatch(/window.__ZUNO__ = {"stores":{"counter":{"version":1,"state":2}/)
    await demo.universe.store('counter').set(0)
  })

  it('serves the browser bundle the page hydrates with', async () => {
    const response = await fetch(`${demo.url}/app.js`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/javascript/)
    expect(await response.text()).toContain('/zuno')
  })

  it('has a counter and an empty todo list', async () => {
    const state = await (await fetch(`${demo.url}/zuno/state`)).json()
    expect(state.stores).toEqual({ counter: { version: 2, state: 0 }, todos: { version: 0, state: [] } })
  })

  it('keeps two replicas in sync, counter and todos alike', async () => {
    const a = connect({ url: `${demo.url}/zuno`, EventSource })
    const b = connect({ url: `${demo.url}/zuno`, EventSource })
    try {
      const counterB = b.store<number>('counter', 0)
      const todosB = b.store<Array<{ text: string }>>('todos', [])
      await Promise.all([
        a.store<number>('counter', 0).set((n) => n + 1),
        b.store<number>('counter', 0).set((n) => n + 1),
        a.store<Array<{ id: string; text: string; done: boolean }>>('todos', []).set((all) => [
          ...all,
          { id: '1', text: 'try zuno', done: false },
        ]),
      ])
      await until(() => counterB.get() === 2 && todosB.get().length === 1).catch(() => {
        throw new Error(`b shows ${counterB.get()} v${counterB.version}, ${JSON.stringify(todosB.get())}; server ${demo.universe.store('counter').get()}`)
      })
      expect(demo.universe.store('counter').get()).toBe(2)
    } finally {
      a.close()
      b.close()
    }
  })

  it('refuses stores the demo does not declare', async () => {
    const response = await fetch(`${demo.url}/zuno/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: rawProposal(await epochOf(`${demo.url}/zuno`), { storeKey: 'other' }),
    })
    expect(response.status).toBe(403)
  })
})
