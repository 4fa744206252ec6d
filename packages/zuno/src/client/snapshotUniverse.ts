import { appSetup, type ZunoApp } from '../app'
import { ZunoError } from '../errors'
import { Observable } from '../observable'
import type { StateResponse } from '../protocol'
import type { SpecOf } from '../storeSpecs'
import type { StoreCell, Updater } from '../store'
import { Universe } from '../universe'
import type { ConnectionStatus } from './connection'
import { type FirstRender, firstRenderOf } from './firstRender'
import type { ReadableValue } from './replicaUniverse'

/**
 * A read-only universe frozen at one snapshot: what server-side rendering renders from, one per
 * request. It reports the status a replica starts with, so the server's HTML and the client's
 * first render agree.
 */
export class SnapshotUniverse extends Universe {
  readonly role = 'replica' as const
  /** Always `connecting`, as a freshly hydrated replica is. */
  readonly status: ReadableValue<ConnectionStatus> = new Observable<ConnectionStatus>('connecting')
  /** Always 0. */
  readonly pending: ReadableValue<number> = new Observable(0)
  /** Always undefined. */
  readonly lastError: ReadableValue<ZunoError | undefined> = new Observable<ZunoError | undefined>(undefined)
  /** What the page renders from: the same as what the hydrating replica's first render shows. */
  readonly firstRender: FirstRender
  readonly #specs: SpecOf | undefined

  constructor(
    /** The snapshot, to hand to the client as `connect({ hydrate })`. */
    readonly state: StateResponse,
    options: SnapshotUniverseOptions = {},
  ) {
    super()
    const setup = options.app === undefined ? undefined : appSetup(options.app, options.initial, undefined)
    this.#specs = setup?.specs
    // Declared before anything reads them, so a store the snapshot lacks renders as the client's first render does.
    for (const [key, initial] of Object.entries(setup?.states ?? options.initial ?? {})) this.cell(key, initial)
    this.firstRender = firstRenderOf(state, (key) => this.cell(key).get())
    for (const [key, { version, state: value, deleted }] of Object.entries(state.stores)) {
      // The server's state, not a declaration: the app's own initial states stay the app's. A
      // deleted store shows its initial state, as the replica does.
      const cell = this.cell(key)
      cell.publish(deleted ? cell.get() : value, version)
    }
  }

  /** A family's store shows its family's initial state, as the replica's first render does. */
  protected override initialOf(key: string): unknown {
    return this.#specs?.(key)?.initial
  }

  protected writeStore(cell: StoreCell<unknown>, _next: Updater<unknown>): Promise<number> {
    return Promise.reject(new ZunoError('read_only', `${cell.key} is read-only while rendering on the server`))
  }
}

/** Options of {@link createSnapshotUniverse}. */
export interface SnapshotUniverseOptions {
  /**
   * The app definition the client connects with (`connect({ app })`): its stores' and families'
   * initial states, so a store the snapshot lacks renders the same on the server as in the
   * client's first render. Default: none.
   */
  app?: ZunoApp
  /**
   * The initial states the client declares in `connect({ initial })`: pass the same object, so a
   * store the snapshot lacks renders the same on the server as in the client's first render.
   * Default: none.
   */
  initial?: Partial<Record<string, unknown>>
}

/** A read-only universe of one snapshot (`universe.snapshot()` on the server, or `GET /state`). */
export function createSnapshotUniverse(state: StateResponse, options?: SnapshotUniverseOptions): SnapshotUniverse {
  return new SnapshotUniverse(state, options)
}
