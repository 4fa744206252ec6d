import { renderToString } from 'react-dom/server'
import { createSnapshotUniverse, type StateResponse, validateState } from 'zuno'
import type { ServedUniverse } from 'zuno/server'
import { serializeState, ZunoProvider } from 'zuno-react'
import { App } from './app/App'
import { errorPage, page } from './page'
import { demoSchemas, demoStores } from './stores'

/** The answer to `GET /`. */
export interface DemoPage {
  status: 200 | 500
  html: string
}

/**
 * The demo page for one request: the app rendered from a snapshot universe, with that snapshot
 * embedded for the client to hydrate from. Shared by the Express and the Elysia servers.
 * Never throws: a failure is logged and answered with a short page that tells the visitor nothing more.
 */
export async function renderDemoPage(universe: ServedUniverse, log: (...data: unknown[]) => void = console.error): Promise<DemoPage> {
  try {
    const state = await checkedSnapshot(universe, log)
    const markup = renderToString(
      <ZunoProvider universe={createSnapshotUniverse(state)}>
        <App />
      </ZunoProvider>,
    )
    return { status: 200, html: page(markup, serializeState(state)) }
  } catch (error) {
    log('zuno demo: rendering the page failed', error)
    return { status: 500, html: errorPage }
  }
}

/**
 * The universe's snapshot, with the initial state in place of any stored state that fails its
 * schema (a data folder from an older version, say), so one bad store cannot take the page down.
 * The version is kept: the page's next write replaces the bad state.
 */
async function checkedSnapshot(universe: ServedUniverse, log: (...data: unknown[]) => void): Promise<StateResponse> {
  // The declared stores (the demo has no others), which a storage read lazily (Redis) always holds in memory.
  const snapshot = universe.snapshot(Object.keys(demoStores))
  for (const [key, stored] of Object.entries(snapshot.stores)) {
    if (!Object.hasOwn(demoSchemas, key)) continue
    const schema = demoSchemas[key as keyof typeof demoSchemas]
    try {
      await validateState(schema, key, stored.state)
    } catch (error) {
      log(`zuno demo: the stored state of ${JSON.stringify(key)} (v${stored.version}) fails its schema; rendering its initial state`, error)
      snapshot.stores[key] = { version: stored.version, state: demoStores[key as keyof typeof demoStores] }
    }
  }
  return snapshot
}
