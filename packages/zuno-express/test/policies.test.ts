import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type ConflictInfo, connect, type ReplicaOptions, type ReplicaUniverse, type ZunoError } from 'zuno'
import { createUniverse } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { serveExpress } from './serveExpress'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve() {
  const served = await serveExpress(createUniverse({ stores: { counter: 0, doc: { title: 'a', body: 'x' } } }))
  cleanups.push(served.close)
  return served
}

/** A replica that does not follow `counter` or `doc`, so its proposals there start stale. */
async function staleReplica(url: string, options: Partial<ReplicaOptions> = {}): Promise<ReplicaUniverse> {
  const replica = connect({ url, EventSource, stores: ['unrelated'], ...options })
  cleanups.push(() => replica.close())
  await until(() => replica.status.get() === 'connected')
  return replica
}

describe('conflict policies and hooks', () => {
  it('rollback: drops the op on conflict, shows the server state and tells the hooks', async () => {
    const { universe, url } = await serve()
    await universe.store<number>('counter').set(10)
    const conflicts: ConflictInfo[] = []
    const onError = vi.fn()
    const replica = await staleReplica(url, { conflictPolicy: { counter: 'rollback' }, onConflict: (info) => conflicts.push(info), onError })
    const counter = replica.store<number>('counter', 0)
    const attempt = counter.set((n) => n + 1)
    await expect(attempt).rejects.toMatchObject({ code: 'conflict' })
    expect(counter.get()).toBe(10)
    expect(conflicts).toEqual([{ storeKey: 'counter', opId: 1, conflicts: 1, theirs: { version: 1, state: 10 } }])
    expect(onError).toHaveBeenCalledWith(expect.objectContaining({ code: 'conflict' }), { storeKey: 'counter', opId: 1 })
    expect(replica.lastError.get()?.code).toBe('conflict')
    expect(universe.store('counter').get()).toBe(10)
  })

  it('merge: proposes what the merge function makes of base, mine and theirs', async () => {
    const { universe, url } = await serve()
    await universe.store('doc').set({ title: 'server title', body: 'x' })
    const merge = vi.fn(({ base, mine, theirs }) => {
      const changed = Object.fromEntries(Object.entries(mine as object).filter(([k, v]) => (base as Record<string, unknown>)[k] !== v))
      return { ...(theirs as object), ...changed }
    })
    const replica = await staleReplica(url, { conflictPolicy: { doc: { merge } } })
    const doc = replica.store<{ title: string; body: string }>('doc', { title: 'a', body: 'x' })
    await expect(doc.set((d) => ({ ...d, body: 'my body' }))).resolves.toBe(2)
    expect(universe.store('doc').get()).toEqual({ title: 'server title', body: 'my body' })
    expect(merge).toHaveBeenCalledWith({
      base: { title: 'a', body: 'x' },
      mine: { title: 'a', body: 'my body' },
      theirs: { title: 'server title', body: 'x' },
    })
  })

  it('rebase: re-proposes a plain value as it is', async () => {
    const { universe, url } = await serve()
    await universe.store<number>('counter').set(10)
    const replica = await staleReplica(url)
    await expect(replica.store<number>('counter', 0).set(5)).resolves.toBe(2)
    expect(universe.store('counter').get()).toBe(5)
  })

  it('rejects an op whose updater throws, without proposing it, and keeps the next ones', async () => {
    const { universe, url } = await serve()
    const replica = await staleReplica(url)
    const counter = replica.store<number>('counter', 0)
    const failing = counter.set(() => {
      throw new Error('boom')
    })
    const next = counter.set((n) => n + 1)
    await expect(failing).rejects.toMatchObject({ code: 'update_failed' })
    await expect(next).resolves.toBe(1)
    expect(universe.store('counter').get()).toBe(1)
  })

  it('refuses new ops past maxPendingOps with queue_full, and counts pending ops', async () => {
    const { url } = await serve()
    const replica = await staleReplica(url, { maxPendingOps: 2 })
    const counter = replica.store<number>('counter', 0)
    const seen: number[] = []
    replica.pending.subscribe((count) => seen.push(count))
    const first = counter.set(1)
    const second = counter.set(2)
    await expect(counter.set(3)).rejects.toMatchObject({ code: 'queue_full' })
    expect(counter.get()).toBe(2)
    await Promise.all([first, second])
    expect(seen).toEqual([1, 2, 1, 0])
  })

  it('queues ops while the server is unreachable and flushes them in order once it is back', async () => {
    const { universe, url } = await serve()
    let online = false
    const gatedFetch: typeof fetch = (input, init) =>
      online ? fetch(input, init) : Promise.reject(new TypeError('offline'))
    const replica = await staleReplica(url, { fetch: gatedFetch })
    const counter = replica.store<number>('counter', 0)
    const ops = [counter.set((n) => n + 1), counter.set((n) => n * 10), counter.set((n) => n + 2)]
    await until(() => replica.lastError.get()?.code === 'network')
    expect(counter.get()).toBe(12) // shown at once, in order
    expect(replica.pending.get()).toBe(3)
    online = true
    await expect(Promise.all(ops)).resolves.toEqual([1, 2, 3])
    expect(universe.store('counter').get()).toBe(12)
  })

})

describe('errors carry their type', () => {
  it('is a ZunoError with code and status', async () => {
    const { url } = await serve()
    const replica = await staleReplica(url)
    const error = (await replica.store<number>('forbidden', 0).set(1).catch((e: unknown) => e)) as ZunoError
    expect(error.name).toBe('ZunoError')
    expect(error).toMatchObject({ code: 'store_not_allowed', status: 403 })
  })
})
