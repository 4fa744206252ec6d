import { hydrateRoot } from 'react-dom/client'
import { connect, createIndexedDbOutbox, type StateResponse } from 'zuno'
import { ZunoProvider } from 'zuno-react'
import { demoApp } from '../stores'
import { App, type ConflictNote } from './App'

declare global {
  interface Window {
    __ZUNO__: StateResponse
  }
}

/** Conflicts the page lists: each 409 our ops met, newest last. */
let notes: ConflictNote[] = []
const listeners = new Set<(notes: ConflictNote[]) => void>()
const conflicts = {
  get: () => notes,
  subscribe(listener: (notes: ConflictNote[]) => void) {
    listeners.add(listener)
    return () => {
      listeners.delete(listener)
    }
  },
}

const universe = connect({
  url: '/zuno',
  hydrate: window.__ZUNO__,
  // The server's stores, schemas and actions: an op they refuse is refused here, before it is sent.
  app: demoApp,
  // Clicks that could not be sent yet survive a reload.
  outbox: createIndexedDbOutbox({ name: 'zuno-demo' }),
  onConflict({ storeKey, conflicts: count, theirs }) {
    const text = `${storeKey}: someone else wrote v${theirs.version} first; rebased (attempt ${count + 1})`
    notes = [...notes, { id: notes.length, text }]
    for (const listener of listeners) listener(notes)
  },
})
// For the end-to-end tests and the curious: the page's universe.
Object.assign(window, { zuno: universe })
// A tab that closes (or navigates away) says so: it leaves the presence rooms at once instead of
// after the server's grace. Ops not yet confirmed stay in the outbox for the next page.
addEventListener('pagehide', (event) => {
  if (!event.persisted) universe.close()
})

hydrateRoot(
  document.getElementById('root') as HTMLElement,
  <ZunoProvider universe={universe}>
    <App conflicts={conflicts} />
  </ZunoProvider>,
)
