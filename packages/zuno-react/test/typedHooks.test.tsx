/**
 * The hooks typed from an app definition (`createZunoHooks`): a component reads and writes its
 * stores with their types and no cast, and a key the app does not define does not compile
 * (checked by `pnpm typecheck`).
 */
import { act } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, expect, expectTypeOf, it } from 'vitest'
import { connect, defineZuno } from 'zuno'
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
