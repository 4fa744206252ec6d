import { act } from 'react'
import { createRoot, type Root } from 'react-dom/client'
import type { Universe } from 'zuno'
import { ZunoProvider } from 'zuno-react'
import { cleanups } from './cleanups'

// Tells React that updates are wrapped in act(), as these tests wrap them.
;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true

/**
 * Renders `element` under a provider of `universe` in a container added to the document.
 * `unmount()` takes it down (a second call does nothing); the cleanups do it for a test that did not.
 */
export function mount(universe: Universe, element: React.ReactNode): { container: HTMLElement; root: Root; unmount: () => void } {
  const container = document.createElement('div')
  document.body.append(container)
  const root = createRoot(container)
  act(() => root.render(<ZunoProvider universe={universe}>{element}</ZunoProvider>))
  let mounted = true
  const unmount = () => {
    if (!mounted) return
    mounted = false
    act(() => root.unmount())
    container.remove()
  }
  cleanups.push(unmount)
  return { container, root, unmount }
}

/** Lets React render what the replicas heard. */
export const settle = (ms = 30) => act(() => new Promise((resolve) => setTimeout(resolve, ms)))
