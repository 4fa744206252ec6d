import { describe, expect, it, vi } from 'vitest'
import { createUniverse } from '../src/server/index'

describe('Store on an authoritative universe', () => {
  it('starts at version 0 with the declared state', () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const counter = universe.store<number>('counter')
    expect(counter.get()).toBe(0)
    expect(counter.version).toBe(0)
    expect(counter.key).toBe('counter')
  })

  it('applies values and updater functions, one version each', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const counter = universe.store<number>('counter')
    await expect(counter.set(5)).resolves.toBe(1)
    await expect(counter.set((n) => n + 1)).resolves.toBe(2)
    expect(counter.get()).toBe(6)
    expect(counter.version).toBe(2)
  })

  it('notifies subscribers with the new and previous state, until they unsubscribe', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const counter = universe.store<number>('counter')
    const listener = vi.fn()
    const unsubscribe = counter.subscribe(listener)
    await counter.set(1)
    await counter.set(2)
    unsubscribe()
    await counter.set(3)
    expect(listener.mock.calls).toEqual([
      [1, 0],
      [2, 1],
    ])
  })

  it('keeps the snapshot identity until the state changes', async () => {
    const universe = createUniverse({ stores: { todos: [] as string[] } })
    const todos = universe.store<string[]>('todos')
    const before = todos.get()
    expect(todos.get()).toBe(before)
    await todos.set((list) => [...list, 'a'])
    const after = todos.get()
    expect(after).not.toBe(before)
    expect(todos.get()).toBe(after)
    expect(after).toEqual(['a'])
  })

  it('keeps notifying the others when one listener throws, and reports the error', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const counter = universe.store<number>('counter')
    const reported = new Promise<unknown>((resolve) => process.once('uncaughtException', resolve))
    counter.subscribe(() => {
      throw new Error('faulty listener')
    })
    const healthy = vi.fn()
    counter.subscribe(healthy)
    await counter.set(1)
    expect(healthy).toHaveBeenCalledWith(1, 0)
    await expect(reported).resolves.toMatchObject({ message: 'faulty listener' })
  })

  it('rejects an invalid store key with a ZunoError', () => {
    const universe = createUniverse()
    expect(() => universe.store('bad key')).toThrowError(expect.objectContaining({ code: 'invalid_store_key' }))
  })
})
