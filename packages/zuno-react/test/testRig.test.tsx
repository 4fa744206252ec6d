/**
 * A component tested the way an app's own tests would, with `zuno/testing`: no server to start, no
 * port, the real client and server behind the hooks.
 */
import { act } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, expect, it } from 'vitest'
import { createTestRig, type TestRig } from 'zuno/testing'
import { useStore, useStoreApi, ZunoProvider } from 'zuno-react'
import { until } from '../../zuno/test/support/until'

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true

let rig: TestRig | undefined
afterEach(async () => {
  await rig?.close()
})

function Counter() {
  const counter = useStoreApi<number>('counter', 0)
  const count = useStore<number>('counter')
  return (
    <button type="button" onClick={() => void counter.set((n) => n + 1)}>
      clicked {count}
    </button>
  )
}

it('renders a component on a replica of the rig, and its click reaches the server', async () => {
  rig = createTestRig({ stores: { counter: 0 } })
  const universe = rig.connect()
  const container = document.createElement('div')
  document.body.append(container)
  const root = createRoot(container)
  await act(async () => root.render(<ZunoProvider universe={universe}>{<Counter />}</ZunoProvider>))
  await act(async () => container.querySelector('button')?.click())
  expect(container.textContent).toBe('clicked 1')
  await act(() => rig?.settled())
  expect(rig.server.store('counter').get()).toBe(1)
  // And the other way: a server write shows in the component.
  await act(async () => void (await rig?.server.store('counter').set(7)))
  await until(() => container.textContent === 'clicked 7')
  act(() => root.unmount())
  container.remove()
})
