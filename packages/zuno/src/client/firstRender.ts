import type { ZunoError } from '../errors'
import type { StateResponse, StoreState } from '../protocol'
import type { ConnectionStatus } from './connection'

/**
 * What the first render of a server-rendered page shows, on the server and in the browser alike:
 * the snapshot the server rendered from, and the status a replica starts with. React renders it
 * during hydration (`getServerSnapshot`), so the client's first render equals the server's HTML
 * whatever arrived before hydration (another tab's relay, say); anything newer follows right after.
 */
export interface FirstRender {
  /** Always `connecting`: the server cannot know how a client's connection will go. */
  readonly status: ConnectionStatus
  /** Always 0. */
  readonly pending: number
  /** Always undefined. */
  readonly lastError: ZunoError | undefined
  /** A store as of the snapshot; one the snapshot lacks shows its initial state, at version 0. */
  store(key: string): StoreState
}

/** The first render of `snapshot`; `initialOf(key)` gives the initial state of a store the snapshot lacks. */
export function firstRenderOf(snapshot: StateResponse, initialOf: (key: string) => unknown): FirstRender {
  return {
    status: 'connecting',
    pending: 0,
    lastError: undefined,
    store: (key) => {
      const stored = Object.hasOwn(snapshot.stores, key) ? (snapshot.stores[key] as StoreState) : undefined
      if (stored === undefined) return { version: 0, state: initialOf(key) }
      // A deleted store renders its initial state, at the deletion's version, as a replica shows it.
      return stored.deleted ? { version: stored.version, state: initialOf(key) } : stored
    },
  }
}
