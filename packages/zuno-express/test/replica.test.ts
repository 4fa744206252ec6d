import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type ReplicaOptions, type ReplicaUniverse } from 'zuno'
import { createUniverse } from 'zuno/server'
import { serveExpress } from './serveExpress'
import { until } from '../../zuno/test/support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** An EventSource class whose streams come from `actual` whatever URL the replica asks for under `asked`. */
function pointedAt(actual: string, asked: string): typeof EventSource {
  return class extends EventSource {
    constructor(target: string | URL, init?: ConstructorParameters<typeof EventSource>[1]) {
      super(String(target).replace(asked, actual), init)
    }
  }
}

async function serve() {
  const served = await serveExpress(createUniverse({ stores: { counter: 0, todos: [] as string[] } }))
  cleanups.push(served.close)
  return served
}

function replica(url: string, options: Partial<ReplicaOptions> = {}): ReplicaUniverse {
  const universe = connect({ url, EventSource, ...options })
  cleanups.push(() => universe.close())
  return universe
}


describe('replica universe against a real server', () => {
  it('reports connecting, then connected, and receives the snapshot', async () => {
    const { url } = await serve()
    const client = replica(url)
    expect(client.role).toBe('replica')
    expect(client.status.get()).toBe('connecting')
    const counter = client.store<number>('counter', -1)
    await until(() => client.status.get() === 'connected' && counter.version === 0 && counter.get() === 0)
    expect(client.lastEventId).toMatch(/-0$/)
  })

  it('shows a set at once and resolves with the committed version', async () => {
    const { universe, url } = await serve()
    const client = replica(url)
    const counter = client.store<number>('counter', 0)
    const committed = counter.set(5)
    expect(counter.get()).toBe(5) // optimistic, before any answer
    expect(client.pending.get()).toBe(1)
    await expect(committed).resolves.toBe(1)
    expect(client.pending.get()).toBe(0)
    expect(universe.store('counter').get()).toBe(5)
  })

  it('keeps two replicas in sync through the server', async () => {
    const { url } = await serve()
    const a = replica(url)
    const b = replica(url)
    const todosB = b.store<string[]>('todos', [])
    await a.store<string[]>('todos', []).set((list) => [...list, 'milk'])
    await until(() => todosB.get().length === 1)
    expect(todosB.get()).toEqual(['milk'])
    expect(todosB.version).toBe(1)
  })

  it('loses no functional increment from replicas racing on one store', async () => {
    const { universe, url } = await serve()
    const replicas = [replica(url), replica(url), replica(url)]
    const counters = replicas.map((r) => r.store<number>('counter', 0))
    await until(() => replicas.every((r) => r.status.get() === 'connected'))
    const each = 20
    const versions = await Promise.all(
      counters.flatMap((counter) => Array.from({ length: each }, () => counter.set((n) => n + 1))),
    )
    const total = replicas.length * each
    expect(new Set(versions).size).toBe(total) // every op got a version of its own
    expect(universe.store('counter').get()).toBe(total)
    await until(() => counters.every((counter) => counter.get() === total && counter.version === total))
  })

  it('rejects with a conflict after maxAttempts and shows the server state', async () => {
    const { universe, url } = await serve()
    await universe.store<number>('counter').set(100)
    // This replica does not follow `counter`, so it proposes on a stale version.
    const client = replica(url, { stores: ['todos'], maxAttempts: 1 })
    const counter = client.store<number>('counter', 0)
    const attempt = counter.set((n) => n + 1)
    expect(counter.get()).toBe(1)
    await expect(attempt).rejects.toMatchObject({ name: 'ZunoError', code: 'conflict' })
    expect(counter.get()).toBe(100)
    expect(counter.version).toBe(1)
    expect(universe.store('counter').get()).toBe(100)
  })

  it('rebases onto the server state and retries when attempts remain', async () => {
    const { universe, url } = await serve()
    await universe.store<number>('counter').set(100)
    const client = replica(url, { stores: ['todos'] })
    const counter = client.store<number>('counter', 0)
    await expect(counter.set((n) => n + 1)).resolves.toBe(2)
    expect(counter.get()).toBe(101)
    expect(universe.store('counter').get()).toBe(101)
  })

  it('rejects a refused op with the server error code and rolls it back', async () => {
    const { url } = await serve()
    const client = replica(url)
    const secret = client.store<number>('not-allowed', 0)
    const attempt = secret.set(1)
    expect(secret.get()).toBe(1)
    await expect(attempt).rejects.toMatchObject({ code: 'store_not_allowed', status: 403 })
    expect(secret.get()).toBe(0)
  })

  it('retries a proposal whose answer was lost with the same ids, and it applies once', async () => {
    const { universe, url } = await serve()
    let lost = 0
    const bodies: string[] = []
    const flakyFetch: typeof fetch = async (input, init) => {
      bodies.push(String(init?.body))
      const response = await fetch(input, init)
      if (lost++ === 0) throw new TypeError('network error: response lost after commit')
      return response
    }
    const client = replica(url, { fetch: flakyFetch, stores: ['todos'] })
    const counter = client.store<number>('counter', 0)
    await expect(counter.set((n) => n + 1)).resolves.toBe(1)
    expect(bodies).toHaveLength(2)
    expect(bodies[1]).toBe(bodies[0])
    expect(universe.store('counter').version).toBe(1)
  })

  it('re-sends an op in doubt unchanged, even when another write moved the store meanwhile', async () => {
    const { universe, url } = await serve()
    let first = true
    const bodies: Array<Record<string, unknown>> = []
    // The first answer is lost; before the retry, someone else writes the store.
    const flakyFetch: typeof fetch = async (input, init) => {
      bodies.push(JSON.parse(String(init?.body)))
      const response = await fetch(input, init)
      if (first) {
        first = false
        await universe.store<number>('counter').set(100)
        throw new TypeError('network error: response lost after commit')
      }
      return response
    }
    // Following another store only, so the answer (not the stream's echo) settles the op.
    const client = replica(url, { fetch: flakyFetch, stores: ['todos'] })
    await until(() => client.status.get() === 'connected')
    await expect(client.store<number>('counter', 0).set((n) => n + 1)).resolves.toBe(1)
    // The retry was the same body (a rebased one would be a reused id) and was answered as the original.
    expect(bodies.length).toBeGreaterThanOrEqual(2)
    for (const body of bodies.slice(1)) expect(body).toEqual(bodies[0])
    expect(universe.store('counter').get()).toBe(100)
    expect(universe.store('counter').version).toBe(2)
  })

  it('backs off after epoch_changed until its stream brings the new epoch, instead of re-sending at once', async () => {
    // Its stream comes from one server, its proposals reach another in a newer epoch (an instance
    // behind a balancer that moved on first): every proposal is answered epoch_changed.
    const streamed = await serve()
    const { universe, url } = await serve()
    let posts = 0
    const toNewer: typeof fetch = (input, init) => {
      posts += 1
      return fetch(input, init)
    }
    const client = replica(url, { fetch: toNewer, EventSource: pointedAt(streamed.url, url) })
    await until(() => client.status.get() === 'connected')
    void client.store<number>('counter', 0).set((n) => n + 1).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(universe.store('counter').version).toBe(0)
    expect(client.lastError.get()?.code).toBe('epoch_changed')
    expect(posts).toBeGreaterThan(0)
    expect(posts).toBeLessThan(10) // a replica that re-sent at once would have posted hundreds of times
  })

  it('rejects pending ops when closed', async () => {
    const { url } = await serve()
    const client = replica(url)
    const attempt = client.store<number>('counter', 0).set(1)
    client.close()
    await expect(attempt).rejects.toMatchObject({ code: 'closed' })
    await expect(client.store<number>('counter').set(2)).rejects.toMatchObject({ code: 'closed' })
  })
})
