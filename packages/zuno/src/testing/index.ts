/**
 * `zuno/testing`: Zuno without a network, for an app's own tests. A server universe and any
 * number of replicas in one process, wired through the fetch handler instead of HTTP: the same
 * protocol, checks, schemas and conflict handling as in production, with no port to open and
 * nothing to mock.
 *
 * @module zuno/testing
 */
import type { ConnectionStatus, EventSourceConstructor } from '../client/connection'
import type { ReplicaOptions } from '../client/replicaOptions'
import { connect, type ReplicaUniverse } from '../client/replicaUniverse'
import type { ZunoApp } from '../app'
import type { Schemas, StatesOf } from '../schema'
import { type AuthoritativeUniverse, createUniverse, type UniverseOptions } from '../server/authoritativeUniverse'
import { createFetchHandler, type FetchHandlerOptions } from '../server/fetchHandler'
import { InProcessEventSource } from './inProcessEventSource'

export { InProcessEventSource } from './inProcessEventSource'

/** Options of {@link createTestRig}: the server universe's, plus the sync server's under `server`. */
export interface TestRigOptions<S extends Schemas = Schemas> extends UniverseOptions<S> {
  /**
   * Options of the sync server (`authenticate`, `authorize`, limits…). Default: the defaults, except
   * no proposal rate limit. Not `prefix`: the rig's replicas reach it at its own URL.
   */
  server?: Omit<FetchHandlerOptions, 'prefix'>
}

/** What a replica connected through the rig takes: everything but how it reaches the server. */
export type TestReplicaOptions<S extends Schemas = Schemas> = Omit<ReplicaOptions<S>, 'url' | 'fetch' | 'EventSource'>

/** A server universe and the means to connect replicas to it in process. */
export interface TestRig<TStores extends Record<string, unknown> = Record<string, unknown>> {
  /** The authoritative universe: what the server holds; read it, or write as server code would. */
  readonly server: AuthoritativeUniverse<TStores>
  /**
   * Connects a replica as a browser tab or a Node process would, through the rig. Tabs are off
   * unless asked for: replicas in one test process are separate clients.
   */
  connect<S extends Schemas = Schemas>(options?: TestReplicaOptions<S>): ReplicaUniverse<Schemas extends S ? Record<string, unknown> : StatesOf<S>>
  /**
   * Resolves once every replica connected here that follows the server has no op pending and has
   * seen its last event. Closed replicas, and replicas refused for their credentials (`unauthorized`,
   * `forbidden`: they retry nothing until those change), are not waited for.
   */
  settled(timeoutMs?: number): Promise<void>
  /** The URL replicas connect to; requests to it never leave the process. */
  readonly url: string
  /** A `fetch` that reaches the server in process, for a client made some other way (or a raw request in a test). */
  readonly fetch: typeof fetch
  /** An `EventSource` that reaches the server in process. */
  readonly EventSource: EventSourceConstructor
  /** Closes every replica, then the server. */
  close(): Promise<void>
}

/** Options of {@link createTestRig} with an app definition (see `defineZuno`): its stores and actions, typed. */
export type AppTestRigOptions<TStores extends Record<string, unknown>, TActions extends Record<string, unknown> = Record<string, unknown>> = Omit<
  TestRigOptions,
  'schemas' | 'stores'
> & {
  /** The app definition the server and every replica of the rig read, as in production. */
  app: ZunoApp<TStores, TActions>
  /**
   * Initial states that differ from the app's (a test's own starting point); each must pass its
   * store's schema. The rig's replicas start from them too, until the server's states arrive.
   */
  stores?: Partial<TStores>
}

/** What a replica connected through an app's rig takes: the app comes from the rig. */
export type AppTestReplicaOptions<TStores extends Record<string, unknown>> = Omit<TestReplicaOptions, 'schemas' | 'initial'> & {
  /** Initial states this replica shows until the server's arrive, instead of the rig's or the app's. */
  initial?: Partial<TStores>
}

/**
 * A rig made from an app definition: the server and every replica know exactly the app's stores
 * and actions, so `store('counter')` and `act('increment', args)` are typed, and a key or an action
 * the app does not define is a type error.
 */
export interface AppTestRig<TStores extends Record<string, unknown>, TActions extends Record<string, unknown> = Record<string, unknown>>
  extends Omit<TestRig<TStores>, 'server' | 'connect'> {
  /** The authoritative universe, made with `createUniverse({ app })`. */
  readonly server: AuthoritativeUniverse<TStores, never>
  /** Connects a replica with `connect({ app })`, through the rig; tabs are off unless asked for. */
  connect(options?: AppTestReplicaOptions<TStores>): ReplicaUniverse<TStores, never, TActions>
}

/** Statuses of a replica that waits for new credentials: it cannot catch up until the test gives them. */
const REFUSED: ReadonlySet<ConnectionStatus> = new Set(['unauthorized', 'forbidden'])

/** What the rig needs of the platform; Jest's jsdom environment, for one, has none of it. */
const WEB_PLATFORM = ['Request', 'Response', 'Headers', 'ReadableStream', 'TextEncoder', 'TextDecoder'] as const

/** Throws, naming what is missing, where the rig could only hang. */
function assertWebPlatform(): void {
  const missing = WEB_PLATFORM.filter((name) => typeof (globalThis as Record<string, unknown>)[name] !== 'function')
  if (missing.length === 0) return
  throw new TypeError(
    `zuno/testing needs ${missing.join(', ')}, which this environment lacks (Node.js 18 and later has them all). ` +
      "Under Jest, run such tests with `@jest-environment node`, or give the jsdom environment Node's globals.",
  )
}

/** The rig's URL: a reserved name (RFC 2606), so a request that escaped the rig could reach nobody. */
const RIG_URL = 'http://zuno.test/zuno'

/**
 * Creates a server universe and a way to connect replicas to it without HTTP:
 *
 * ```ts
 * const rig = createTestRig({ stores: { counter: 0 } })
 * const client = rig.connect()
 * await client.store('counter', 0).set(1)
 * expect(rig.server.store('counter').get()).toBe(1)
 * await rig.close()
 * ```
 *
 * With `{ app }` (see `defineZuno`), the server and every replica read the app definition, as in
 * production: their stores are typed, and writes are checked against the app's schemas.
 */
export function createTestRig<TStores extends Record<string, unknown>, TActions extends Record<string, unknown>>(
  options: AppTestRigOptions<TStores, TActions>,
): AppTestRig<TStores, TActions>
export function createTestRig<S extends Schemas = Schemas>(options?: TestRigOptions<S>): TestRig<Schemas extends S ? Record<string, unknown> : StatesOf<S>>
// The overloads type the rig; its implementation serves replicas of any store types.
export function createTestRig(options: TestRigOptions & { app?: ZunoApp } = {}): object {
  assertWebPlatform()
  const { server: serverOptions, app, ...universeOptions } = options
  // `prefix` is left out of the type; a stray one from untyped code must not send the rig's requests to a 404.
  const { prefix: _ignored, ...handlerOptions } = (serverOptions ?? {}) as FetchHandlerOptions
  // With an app, the server and the replicas read it, as they would in production.
  const server: AuthoritativeUniverse = app === undefined ? createUniverse(universeOptions) : createUniverse({ ...universeOptions, app })
  // A test writes as fast as it can, from one "address": the per-peer proposal limit would bite.
  const handler = createFetchHandler(server, { maxProposalsPerSecond: Number.POSITIVE_INFINITY, ...handlerOptions })
  const rigFetch = ((input: RequestInfo | URL, init?: RequestInit) => handler(new Request(input, init))) as typeof fetch
  const RigEventSource = class extends InProcessEventSource {
    constructor(url: string) {
      super(url, rigFetch)
    }
  }
  /** What the rig needs of each replica it connected, whatever its store types. */
  const replicas = new Set<Pick<ReplicaUniverse, 'pending' | 'lastEventId' | 'status' | 'close'>>()

  return {
    server,
    url: RIG_URL,
    fetch: rigFetch,
    EventSource: RigEventSource,
    connect(replicaOptions: TestReplicaOptions = {}) {
      const wiring = { tabs: false, ...replicaOptions, url: RIG_URL, fetch: rigFetch, EventSource: RigEventSource }
      // An app's rig starts its replicas from the rig's own initial states, as the server does.
      const replica =
        app === undefined ? connect(wiring) : connect({ ...wiring, app, initial: { ...universeOptions.stores, ...replicaOptions.initial } })
      replicas.add(replica)
      // A closed replica follows nothing any more: `settled()` waits for the open ones.
      const stop = replica.status.subscribe((status) => {
        if (status !== 'closed') return
        replicas.delete(replica)
        stop()
      })
      return replica
    },
    async settled(timeoutMs = 5000) {
      await server.ready
      const deadline = Date.now() + timeoutMs
      const behind = () =>
        [...replicas].filter((replica) => !REFUSED.has(replica.status.get()) && (replica.pending.get() > 0 || replica.lastEventId !== server.cursor))
      while (behind().length > 0) {
        if (Date.now() > deadline) {
          const which = behind().map((replica) => `${replica.status.get()}, ${replica.pending.get()} pending, at ${replica.lastEventId ?? 'no event'}`)
          throw new Error(`The replicas did not catch up with the server (at ${server.cursor}) within ${timeoutMs} ms: ${which.join('; ')}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    },
    async close() {
      for (const replica of replicas) replica.close()
      replicas.clear()
      handler.close()
      await server.close()
    },
  }
}
