import { renderToString } from 'react-dom/server'
import { createSnapshotUniverse } from 'zuno'
import type { ServedUniverse } from 'zuno/server'
import { serializeState, ZunoProvider } from 'zuno-react'
import { App } from './app/App'
import { page } from './page'

/**
 * The demo page for one request: the app rendered from a snapshot universe, with that snapshot
 * embedded for the client to hydrate from. Shared by the Express and the Elysia servers.
 */
export function renderDemoPage(universe: ServedUniverse): string {
  const state = universe.snapshot()
  const markup = renderToString(
    <ZunoProvider universe={createSnapshotUniverse(state)}>
      <App />
    </ZunoProvider>,
  )
  return page(markup, serializeState(state))
}
