// Type-checked, and bundled for the browser by browser.tsx: a component on the zuno-react hooks.
import type { ReactNode } from 'react'
import { useConnectionStatus, usePendingCount, useStore, useStoreApi } from 'zuno-react'

export function Counter(): ReactNode {
  const count = useStore<number>('counter')
  const doubled = useStore<number, number>('counter', (n) => n * 2)
  const store = useStoreApi<number>('counter', 0)
  const status = useConnectionStatus()
  const pending = usePendingCount()
  return (
    <button type="button" onClick={() => void store.set((n) => n + 1)}>
      {count} ({doubled}) {status} {pending > 0 ? `${pending} pending` : ''}
    </button>
  )
}
