import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { newClientId } from '../src/id'
import { createUniverse } from '../src/server/index'

const ANONYMOUS = { principal: '' }

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
    await universe.ready
    const [a, b] = [newClientId(), newClientId()]
    const op = { storeKey: 'counter', epoch: universe.epoch, opId: 1 }
    expect(await universe.propose({ ...op, baseVersion: 0, state: 1, clientId: a }, ANONYMOUS)).toEqual({ type: 'accepted', storeKey: 'counter', version: 1, state: 1 })
    const stale = await universe.propose({ ...op, baseVersion: 0, state: 9, clientId: b }, ANONYMOUS)
    expect(stale).toEqual({ type: 'conflict', storeKey: 'counter', version: 1, state: 1 })
    expect(universe.store('counter').get()).toBe(1)
  })

  it('refuses clients a store it does not allow, but lets server code create one', async () => {
    const universe = createUniverse({ stores: { counter: 0 }, allowStore: (key) => key.startsWith('room:') })
    await universe.ready
    const clientId = newClientId()
    const refused = await universe.propose({ storeKey: 'secret', baseVersion: 0, epoch: universe.epoch, state: 1, clientId, opId: 1 }, ANONYMOUS)
    expect(refused).toMatchObject({ type: 'refused', error: { code: 'store_not_allowed', status: 403 } })
    const accepted = await universe.propose({ storeKey: 'room:1', baseVersion: 0, epoch: universe.epoch, state: 1, clientId, opId: 2 }, ANONYMOUS)
    expect(accepted).toMatchObject({ type: 'accepted' })
    await expect(universe.store('secret').set(1)).resolves.toBe(1)
  })

  it('checks server writes as it checks proposals: JSON only, limits and schemas', async () => {
    const universe = createUniverse({ stores: { counter: 0 }, maxStateBytes: 100 })
    await universe.ready
    const store = universe.store<unknown>('counter')
    for (const bad of [undefined, 10n, { f: () => 1 }, Number.NaN, { nested: undefined }, [1, , 3], new Date(0), new Map()]) {
      await expect(store.set(bad)).rejects.toMatchObject({ code: 'invalid_state' })
    }
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    await expect(store.set(cyclic)).rejects.toMatchObject({ code: 'invalid_state' })
    await expect(store.set('x'.repeat(200))).rejects.toMatchObject({ code: 'state_too_large' })
    // Nothing of that reached the truth, and the server still writes.
    expect(universe.snapshot().stores.counter).toEqual({ version: 0, state: 0 })
    await expect(store.set(1)).resolves.toBe(1)
  })

  it('checks what a schema makes of a state as it checks the state: JSON only, within the limits', async () => {
    const universe = createUniverse({
      stores: { when: '', gone: 0, big: 0, upper: '' },
      maxStateBytes: 50,
      schemas: {
        when: z.string().transform((text) => new Date(text)),
        gone: z.number().transform(() => undefined),
        big: z.number().transform((n) => 'x'.repeat(n)),
        upper: z.string().transform((text) => text.trim().toUpperCase()),
      },
    })
    await universe.ready
    const propose = (storeKey: string, state: unknown) =>
      universe.propose({ storeKey, baseVersion: 0, epoch: universe.epoch, state, clientId: newClientId(), opId: 1 }, ANONYMOUS)
    expect(await propose('when', '2026-01-01')).toMatchObject({ type: 'refused', error: { code: 'invalid_state' } })
    expect(await propose('gone', 1)).toMatchObject({ type: 'refused', error: { code: 'invalid_state' } })
    expect(await propose('big', 100)).toMatchObject({ type: 'refused', error: { code: 'state_too_large' } })
    expect(await propose('upper', '  bob ')).toEqual({ type: 'accepted', storeKey: 'upper', version: 1, state: 'BOB' })
    expect(universe.snapshot().stores).toMatchObject({ when: { version: 0 }, gone: { version: 0 }, big: { version: 0 } })
  })

  it('hands out frozen states: no reader can change the truth', async () => {
    const universe = createUniverse({ stores: { todos: [{ title: 'b' }, { title: 'a' }] } })
    await universe.ready
    const { stores } = universe.snapshot()
    const todos = stores.todos?.state as Array<{ title: string }>
    expect(() => todos.sort((x, y) => x.title.localeCompare(y.title))).toThrow(TypeError)
    expect(() => {
      ;(todos[0] as { title: string }).title = 'changed'
    }).toThrow(TypeError)
    await universe.store<Array<{ title: string }>>('todos').set((list) => [...list, { title: 'c' }])
    const written = universe.store<Array<{ title: string }>>('todos').get()
    expect(Object.isFrozen(written) && Object.isFrozen(written[2])).toBe(true)
    expect(universe.snapshot().stores.todos?.state).toEqual([{ title: 'b' }, { title: 'a' }, { title: 'c' }])
  })

  it('copies what server code writes: the caller keeps a mutable object, the truth is frozen', async () => {
    const universe = createUniverse({ stores: { doc: {} } })
    await universe.ready
    const mine = { items: [1] }
    await universe.store('doc').set(mine)
    mine.items.push(2)
    expect(universe.store('doc').get()).toEqual({ items: [1] })
    expect(Object.isFrozen(universe.store('doc').get())).toBe(true)
  })

  it('uses no op id on a server write that never reached the storage', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    await universe.ready
    const store = universe.store<number>('counter')
    await store.set(1)
    await expect(store.set(() => {
      throw new Error('no')
    })).rejects.toThrow('no')
    await expect(store.set(Number.NaN)).rejects.toMatchObject({ code: 'invalid_state' })
    await store.set(2)
    // Both writes went under one identity, ids 1 and 2: nothing was skipped, nothing started afresh.
    const events = universe.since(universe.cursor.replace(/-\d+$/, '-0'))?.map((entry) => entry.event) ?? []
    expect(events.map((event) => event.opId)).toEqual([1, 2])
    expect(new Set(events.map((event) => event.writer)).size).toBe(1)
  })

  it('keeps fanning out when a commit listener throws', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const seen: number[] = []
    const errors: unknown[] = []
    const original = console.error
    console.error = (...args: unknown[]) => errors.push(args)
    try {
      universe.onCommit(() => {
        throw new Error('faulty listener')
      })
      universe.onCommit((entry) => seen.push(entry.event.version))
      await universe.store<number>('counter').set(1)
      await universe.store<number>('counter').set(2)
    } finally {
      console.error = original
    }
    expect(seen).toEqual([1, 2])
    expect(errors).toHaveLength(2)
  })

  it('writes from server code one at a time, in call order, whatever their stores', async () => {
    const universe = createUniverse({ stores: { a: 0, b: 0 } })
    await universe.ready
    const versions = await Promise.all([
      universe.store<number>('a').set(1),
      universe.store<number>('b').set(1),
      universe.store<number>('a').set((n) => n + 1),
    ])
    expect(versions).toEqual([1, 1, 2])
    expect(universe.since(universe.cursor.replace(/-\d+$/, '-0'))?.map((e) => `${e.event.storeKey}@${e.event.version}`)).toEqual(['a@1', 'b@1', 'a@2'])
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
