import { describe, expect, it } from 'vitest'
import { createMemoryStorage, createUniverse } from '../src/server/index'

describe('AuthoritativeUniverse', () => {
  it('is a registry of stores with the authoritative role', () => {
    const universe = createUniverse({ stores: { counter: 0, todos: [] } })
    expect(universe.role).toBe('authoritative')
    expect(universe.keys().sort()).toEqual(['counter', 'todos'])
    expect(universe.has('counter')).toBe(true)
    expect(universe.has('other')).toBe(false)
    expect(universe.store('counter')).toBe(universe.store('counter'))
  })

  it('snapshots declared and written stores with a cursor', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    await universe.ready
    universe.store('unwritten') // reading a store does not make it exist for clients
    await universe.store('made.by.server', 'x').set('y')
    const { stores, cursor } = universe.snapshot()
    expect(stores).toEqual({ counter: { version: 0, state: 0 }, 'made.by.server': { version: 1, state: 'y' } })
    expect(cursor).toMatch(/-1$/)
    expect(universe.snapshot(['counter', 'absent']).stores).toEqual({ counter: { version: 0, state: 0 } })
  })

  it('accepts a proposal only on the current version', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const accepted = await universe.propose({ storeKey: 'counter', baseVersion: 0, state: 1, clientId: 'a', opId: 1 })
    expect(accepted).toMatchObject({ type: 'accepted', event: { version: 1, state: 1, seq: 1 } })
    const stale = await universe.propose({ storeKey: 'counter', baseVersion: 0, state: 9, clientId: 'b', opId: 1 })
    expect(stale).toEqual({ type: 'conflict', version: 1, state: 1 })
    expect(universe.store('counter').get()).toBe(1)
  })

  it('answers a repeated (clientId, opId) with the original result and applies it once', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const op = { storeKey: 'counter', baseVersion: 0, state: 1, clientId: 'a', opId: 1 }
    await universe.propose(op)
    expect(await universe.propose(op)).toEqual({ type: 'duplicate', version: 1, state: 1 })
    expect(universe.store('counter').version).toBe(1)
  })

  it('forgets idempotency records past the window, oldest first', async () => {
    const universe = createUniverse({ stores: { counter: 0 }, storage: createMemoryStorage({ idempotencyWindow: 2 }) })
    for (let opId = 1; opId <= 3; opId++) {
      await universe.propose({ storeKey: 'counter', baseVersion: opId - 1, state: opId, clientId: 'a', opId })
    }
    const forgotten = await universe.propose({ storeKey: 'counter', baseVersion: 0, state: 1, clientId: 'a', opId: 1 })
    expect(forgotten.type).toBe('conflict') // never applied twice: the version moved on
    const remembered = await universe.propose({ storeKey: 'counter', baseVersion: 2, state: 3, clientId: 'a', opId: 3 })
    expect(remembered).toEqual({ type: 'duplicate', version: 3, state: 3 })
  })

  it('refuses clients a store it does not allow, but lets server code create one', async () => {
    const universe = createUniverse({ stores: { counter: 0 }, allowStore: (key) => key.startsWith('room:') })
    await expect(
      universe.propose({ storeKey: 'secret', baseVersion: 0, state: 1, clientId: 'a', opId: 1 }),
    ).rejects.toMatchObject({ code: 'store_not_allowed', status: 403 })
    await expect(
      universe.propose({ storeKey: 'room:1', baseVersion: 0, state: 1, clientId: 'a', opId: 2 }),
    ).resolves.toMatchObject({ type: 'accepted' })
    await expect(universe.store('secret').set(1)).resolves.toBe(1)
  })

  it('logs server writes like client proposals, in commit order, even when a listener writes', async () => {
    const universe = createUniverse({ stores: { a: 0, b: 0 } })
    const seen: string[] = []
    universe.onCommit((entry) => seen.push(`${entry.event.storeKey}@${entry.event.version}#${entry.event.seq}`))
    // A listener that reacts to a by writing b: b's commit must come after a's in the log.
    universe.store<number>('a').subscribe((value) => {
      void universe.store<number>('b').set(value * 10)
    })
    await universe.store<number>('a').set(1)
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(seen).toEqual(['a@1#1', 'b@1#2'])
    expect(universe.since(universe.snapshot().cursor.replace(/-\d+$/, '-0'))?.map((e) => e.event.storeKey)).toEqual([
      'a',
      'b',
    ])
  })

  it('gives each universe instance its own epoch, so old ids are never taken for new ones', async () => {
    const first = createUniverse()
    const second = createUniverse()
    await Promise.all([first.ready, second.ready])
    expect(first.snapshot().cursor).not.toBe(second.snapshot().cursor)
    expect(second.since(first.snapshot().cursor)).toBeUndefined()
  })
})
