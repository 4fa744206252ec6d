import { afterEach, describe, expect, it, vi } from 'vitest'
import { newClientId } from '../src/id'
import { createMemoryStorage, createUniverse } from '../src/server/index'
import { freshDir, openFile, proposer, removeDirs } from './support/fileUniverse'

afterEach(removeDirs)

describe('synchronous delivery and the new ledger (review)', () => {
  it('file storage: a listener that writes synchronously, with compaction on every line, survives a restart exactly once', async () => {
    const dir = freshDir()
    const first = await openFile(dir, { snapshotEvery: 1 })
    const echoId = newClientId()
    const echo = proposer(first.universe, echoId)
    let echoOp = 0
    const pending: Promise<unknown>[] = []
    const order: number[] = []
    first.universe.onCommit((entry) => {
      order.push(entry.event.seq)
      if (entry.event.storeKey === 'counter') {
        echoOp += 1
        pending.push(echo(entry.event.version - 1 < 0 ? 0 : echoOp - 1, entry.event.state, echoOp, 'mirror'))
      }
    })
    first.universe.onCommit(() => {
      throw new Error('a faulty listener')
    })
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {})
    const writerId = newClientId()
    const write = proposer(first.universe, writerId)
    for (let v = 0; v < 5; v++) expect(await write(v, v + 1, v + 1)).toMatchObject({ type: 'accepted', version: v + 1 })
    const answers = await Promise.all(pending)
    spy.mockRestore()
    expect(answers.map((a) => (a as { type: string }).type)).toEqual(Array(5).fill('accepted'))
    expect(order).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(first.universe.store('mirror').get()).toBe(5)
    await first.close()
    const second = await openFile(dir, { snapshotEvery: 1, idempotencyWindow: 2 })
    expect(second.universe.store('counter').get()).toBe(5)
    expect(second.universe.store('mirror').get()).toBe(5)
    expect(second.universe.store('mirror').version).toBe(5)
    // retries after restart into a smaller window
    expect(await proposer(second.universe, writerId)(4, 5, 5)).toEqual({ type: 'accepted', storeKey: 'counter', version: 5, state: 5 })
    expect(await proposer(second.universe, echoId)(4, 5, 5, 'mirror')).toEqual({ type: 'accepted', storeKey: 'mirror', version: 5, state: 5 })
    expect(await proposer(second.universe, writerId)(0, 1, 1)).toMatchObject({ type: 'accepted', duplicate: true, version: 5 })
    await second.close()
  })

  it('two principals sharing a client id never get each other\'s answers', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    await universe.ready
    const clientId = newClientId()
    const req = (baseVersion: number, state: unknown, opId: number) => ({ storeKey: 'counter', baseVersion, state, clientId, opId, epoch: universe.epoch })
    expect(await universe.propose(req(0, 1, 1), { principal: 'alice' })).toMatchObject({ type: 'accepted', version: 1 })
    expect(await universe.propose(req(0, 1, 1), { principal: 'bob' })).toMatchObject({ type: 'conflict', version: 1 })
    expect(await universe.propose(req(1, 1, 1), { principal: 'bob' })).toMatchObject({ type: 'accepted', version: 2 })
    expect(await universe.propose(req(0, 1, 1), { principal: 'alice' })).toMatchObject({ type: 'accepted', version: 1 })
    expect(await universe.propose(req(1, 1, 2), { principal: 'alice' })).toMatchObject({ type: 'conflict' })
  })

  it('a load() image and a conflict answer stay as they were', async () => {
    const storage = createMemoryStorage()
    const universe = createUniverse({ stores: { counter: 0 }, storage })
    await universe.ready
    const w = proposer(universe)
    await w(0, 1, 1)
    const image = await storage.load()
    const conflict = universe.propose({ storeKey: 'counter', baseVersion: 0, state: 9, clientId: newClientId(), opId: 1, epoch: universe.epoch }, { principal: '' })
    await w(1, 2, 2)
    expect(image.stores.get('counter')).toEqual({ version: 1, state: 1 })
    expect(await conflict).toMatchObject({ type: 'conflict', version: 1, state: 1 })
  })
})
