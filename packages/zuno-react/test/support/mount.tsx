import { act } from 'react'
import { createRoot, type Root } from 'react-dom/client'
import type { Universe } from 'zuno'
import { ZunoProvider } from 'zuno-react'

/**
 * `mount(universe, element)`: renders `element` under a provider of `universe` in a container added
 * to the document. `unmount()` takes it down (a second call does nothing); `cleanups` does it for a
 * test that did not.
 */
export function mounter(cleanups: Array<() => unknown>) {
  return (universe: Universe, element: React.ReactNode): { container: HTMLElement; root: Root; unmount: () => void } => {
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
}

/** Lets React render what the replicas heard. */
export const settle = (ms = 30) => act(() => new Promise((resolve) => setTimeout(resolve, ms)))
