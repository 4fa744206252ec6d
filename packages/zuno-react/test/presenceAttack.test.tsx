/**
 * The presence hooks under a fresh-context reviewer's attacks (issue #18): each test is a finding
 * and fails against the code as reviewed. A real server, real replicas with the `eventsource` client.
 */
import { EventSource } from 'eventsource'
import { act, version as reactVersion } from 'react'
import { createRoot } from 'react-dom/client'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type Universe } from 'zuno'
import { createUniverse } from 'zuno/server'
import { useMyPresence, ZunoProvider } from 'zuno-react'
import { until } from '../../zuno/test/support/until'
import { serveExpress } from '../../zuno-express/test/serveExpress'

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function mount(universe: Universe, element: React.ReactNode) {
  const container = document.createElement('div')
  document.body.append(container)
  const root = createRoot(container)
  act(() => root.render(<ZunoProvider universe={universe}>{element}</ZunoProvider>))
  cleanups.push(() => {
    act(() => root.unmount())
    container.remove()
  })
  return container
}

const settle = (ms = 30) => act(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe(`zuno-react presence, as a fresh review attacked it, on React ${reactVersion}`, () => {
  it('A10: useMyPresence shows `initial` again after set(null): this tab shows a cursor the others no longer see', async () => {
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    const replica = () => {
      const made = connect({ url: served.url, EventSource, tabs: false, fetch: globalThis.fetch, stores: [] })
      cleanups.push(() => made.close())
      return made
    }
    const a = replica()
    const bRoom = replica().presence('doc:1', 'b')
    let setCursor: ((next: { x: number } | null) => void) | undefined
    function Cursor() {
      const [me, setMe] = useMyPresence<{ x: number } | null>('doc:1', { x: 1 })
      setCursor = setMe
      return <span>{me === null ? 'no cursor' : `at ${me.x}`}</span>
    }
    const container = mount(a, <Cursor />)
    await until(async () => {
      await settle()
      return bRoom.others().length === 1
    }, 15_000)
    // The pointer leaves the page: the cursor is hidden (the docs' own example sets `{ cursor: null }`; a bare null is a valid value too).
    act(() => setCursor?.(null))
    await until(async () => {
      await settle()
      return bRoom.others()[0]?.state === null
    }, 15_000)
    // The others see null; this tab must too.
    expect(container.textContent).toBe('no cursor')
  })
})
