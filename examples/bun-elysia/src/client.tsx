/** The page: a replica of the app's stores, and React components that read and write them. */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { connect } from 'zuno'
import { createZunoHooks, useConnectionStatus, ZunoProvider } from 'zuno-react'
import { app } from './app'

const replica = connect({ app, url: '/zuno' })
const { useStore, useStoreApi } = createZunoHooks<typeof app>()

function Counter() {
  const count = useStore('counter')
  const counter = useStoreApi('counter')
  return (
    <p>
      <span data-testid="counter">{count}</span>{' '}
      <button type="button" data-testid="increment" onClick={() => void counter.set((n) => n + 1)}>
        +1
      </button>
    </p>
  )
}

function Status() {
  return <p data-testid="status">{useConnectionStatus()}</p>
}

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <ZunoProvider universe={replica}>
      <Counter />
      <Status />
    </ZunoProvider>
  </StrictMode>,
)
