/**
 * The hooks typed from an app definition (`createZunoHooks`): a component reads and writes its
 * stores with their types and no cast, and a key the app does not define does not compile
 * (checked by `pnpm typecheck`).
 */
import { act } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, expect, expectTypeOf, it } from 'vitest'
import { connect, defineZuno, refuseAction } from 'zuno'
import { createTestRig, type TestRig } from 'zuno/testing'
import { createZunoHooks, ZunoProvider } from 'zuno-react'
import { until } from '../../zuno/test/support/until'

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true

const app = defineZuno({ stores: { counter: { initial: 0 }, title: { initial: 'untitled' } } })
const { useStore, useStoreApi } = createZunoHooks<typeof app>()

let rig: TestRig | undefined
afterEach(async () => {
  await rig?.close()
})

function Counter() {
  const counter = useStoreApi('counter')
  const count = useStore('counter')
  const shout = useStore('title', (title) => title.toUpperCase())
  expectTypeOf(count).toEqualTypeOf<number>()
  expectTypeOf(shout).toEqualTypeOf<string>()
  return (
    <button type="button" onClick={() => void counter.set((n) => n + 1)}>
      {shout} {count}
    </button>
  )
}

/** An app with actions types the same hooks: each action's `run` takes its own arguments. */
const appWithActions = defineZuno({
  stores: { counter: { initial: 0 } },
  actions: { add: { run: (tx, by: number) => tx.set('counter', (n) => n + by) } },
})
const withActions = createZunoHooks<typeof appWithActions>()
expectTypeOf<ReturnType<typeof withActions.useStore<'counter'>>>().toEqualTypeOf<number>()

/** Never rendered: what matters is that it does not compile. */
export function WrongKey() {
  // @ts-expect-error: `nope` is not a store of the app
  return useStore('nope')
}

it('renders typed stores of the app, and a click reaches the server', async () => {
  rig = createTestRig({ stores: { counter: 0, title: 'untitled' } })
  const universe = connect({ app, url: rig.url, fetch: rig.fetch, EventSource: rig.EventSource, tabs: false })
  const container = document.createElement('div')
  document.body.append(container)
  const root = createRoot(container)
  await act(async () => root.render(<ZunoProvider universe={universe}>{<Counter />}</ZunoProvider>))
  expect(container.textContent).toBe('UNTITLED 0')
  await act(async () => container.querySelector('button')?.click())
  await until(() => rig?.server.store('counter').get() === 1)
  act(() => root.unmount())
  universe.close()
  container.remove()
})

/** An app whose counter changes through actions, one of which the server refuses. */
const counterApp = defineZuno({
  stores: { counter: { initial: 0 } },
  actions: {
    increment: { run: (tx) => tx.set('counter', (n) => n + 1) },
    overdraw: {
      run: (tx) => {
        if (tx.get('counter') < 100) refuseAction('not enough')
        tx.set('counter', (n) => n - 100)
      },
    },
  },
})
const counterHooks = createZunoHooks<typeof counterApp>()

function ActionButtons() {
  const count = counterHooks.useStore('counter')
  const increment = counterHooks.useAction('increment')
  const overdraw = counterHooks.useAction('overdraw')
  // @ts-expect-error: `launch` is not an action of the app
  counterHooks.useAction('launch')
  expectTypeOf(increment.run).parameters.toEqualTypeOf<[args?: unknown]>()
  return (
    <p>
      <span data-count="">{count}</span>
      <span data-pending="">{increment.pending ? 'pending' : 'idle'}</span>
      <span data-error="">{overdraw.error?.code ?? 'none'}</span>
      <button type="button" data-increment="" onClick={() => increment.run()} />
      <button type="button" data-overdraw="" onClick={() => overdraw.run()} />
    </p>
  )
}

it('runs actions from a component: the effect at once, pending until the server accepts, a refusal as error', async () => {
  rig = createTestRig({ app: counterApp })
  let releaseAnswers = () => {}
  const held = new Promise<void>((resolve) => (releaseAnswers = resolve))
  // Proposals wait before they reach the server (so no echo can settle them either).
  const fetchHeld: typeof fetch = async (input, init) => {
    if (init?.method === 'POST') await held
    return (rig as TestRig).fetch(input, init)
  }
  const universe = connect({ app: counterApp, url: rig.url, fetch: fetchHeld, EventSource: rig.EventSource, tabs: false })
  await until(() => universe.status.get() === 'connected')
  const container = document.createElement('div')
  document.body.append(container)
  const root = createRoot(container)
  const text = (name: string) => container.querySelector(`[data-${name}]`)?.textContent
  await act(async () => root.render(<ZunoProvider universe={universe}>{<ActionButtons />}</ZunoProvider>))
  expect([text('count'), text('pending'), text('error')]).toEqual(['0', 'idle', 'none'])
  await act(async () => (container.querySelector('[data-increment]') as HTMLButtonElement).click())
  // Shown at once, still waiting for the server's answer.
  expect([text('count'), text('pending')]).toEqual(['1', 'pending'])
  await act(async () => releaseAnswers())
  await act(async () => until(() => text('pending') === 'idle'))
  expect(rig.server.store('counter').get()).toBe(1)
  await act(async () => (container.querySelector('[data-overdraw]') as HTMLButtonElement).click())
  await act(async () => until(() => text('error') === 'action_refused'))
  expect(text('count')).toBe('1')
  act(() => root.unmount())
  universe.close()
  container.remove()
})

/** A store family: one declaration for every `doc:<id>`, typed by its pattern. */
const docsApp = defineZuno({ stores: { 'doc:{id}': { initial: { title: 'untitled' } } } })
const docHooks = createZunoHooks<typeof docsApp>()

function DocTitle({ id }: { id: string }) {
  const title = docHooks.useStore(`doc:${id}`, (doc) => doc.title)
  const doc = docHooks.useStoreApi(`doc:${id}`)
  expectTypeOf(title).toEqualTypeOf<string>()
  expectTypeOf(docHooks.useStore('doc:42')).toEqualTypeOf<{ title: string }>()
  // @ts-expect-error: `page:1` is in no family of the app
  docHooks.useStore('page:1')
  return (
    <button type="button" onClick={() => void doc.set({ title: 'Forty-two' })}>
      {title}
    </button>
  )
}

it("renders a family's store with its initial state, and writes it", async () => {
  const docsRig = createTestRig({ app: docsApp })
  // Closed by the afterEach above; a family's rig types its states as an index signature, which `TestRig` does not take.
  rig = docsRig as unknown as TestRig
  const universe = connect({ app: docsApp, url: docsRig.url, fetch: docsRig.fetch, EventSource: docsRig.EventSource, tabs: false })
  const container = document.createElement('div')
  document.body.append(container)
  const root = createRoot(container)
  await act(async () => root.render(<ZunoProvider universe={universe}>{<DocTitle id="42" />}</ZunoProvider>))
  expect(container.textContent).toBe('untitled')
  await act(async () => container.querySelector('button')?.click())
  await until(() => docsRig.server.store('doc:42').get().title === 'Forty-two')
  expect(container.textContent).toBe('Forty-two')
  act(() => root.unmount())
  universe.close()
  container.remove()
})
