import { createMemoryStorage, createUniverse, type Storage, type UniverseOptions } from '../../src/server/index'
import { serveUniverse } from './zunoBehindProxy'

/**
 * A universe on a storage read lazily (the memory storage's `lazy` mode unless given one), served
 * on 127.0.0.1; `counter` declared, any other store allowed. `cleanups` gets its closing.
 */
export async function lazyServer(cleanups: Array<() => unknown>, options: Partial<UniverseOptions> = {}, storage: Storage = createMemoryStorage({ lazy: true })) {
  const universe = createUniverse({ stores: { counter: 0 }, allowStore: () => true, storage, ...options })
  await universe.ready
  const served = await serveUniverse(universe)
  cleanups.push(() => served.close())
  return { universe, url: served.url, storage }
}

/** POSTs a proposal body as it is; the status and the JSON answer. */
export async function propose(url: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}
