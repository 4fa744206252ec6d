/**
 * Review probes (second review of actions): what an instance knows ahead of its follow of the
 * storage (`#ahead`). Tests that show a problem assert the promised behaviour and are `it.fails`.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { defineZuno } from 'zuno'
import { createUniverse } from 'zuno/server'
import { newClientId } from '../src/id'
import { laggingStorage } from './support/laggingStorage'

const app = defineZuno({
  stores: { level: { initial: 10 as number | null } },
  actions: {
    /** null means "cleared": the next bump starts it at 1. */
    bump: { run: (tx) => tx.set('level', (n) => (n === null ? 1 : n + 1)) },
  },
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('review 2: an action run again on the state a conflict showed', () => {
  // Problem: authoritativeUniverse.ts proposeAction takes `outcome.state ?? this.#declared.get(storeKey)`:
  // a store whose state is JSON null (a legitimate state, written by a set on another instance) is
  // known ahead as its DECLARED state at the conflict's version. The action runs again on a state that
  // never existed at that version, and its commit passes the version check.
  it('runs the action again on null, not on the declared state, when another instance cleared the store (review 2, problem 1)', async () => {
    const storage = laggingStorage()
    cleanups.push(() => storage.close())
    const universe = createUniverse({ app, storage })
    cleanups.push(() => universe.close())
    await universe.ready
    // Another instance clears the store; this one has not followed it yet.
    storage.hold()
    const cleared = await storage.inner.commit({ principal: '', clientId: newClientId(), opId: 1, digest: 'other', epoch: universe.epoch, write: { storeKey: 'level', baseVersion: 0, state: null } })
    expect(cleared.type).toBe('accepted')
    const answer = universe.proposeAction({ action: 'bump', epoch: universe.epoch, clientId: newClientId(), opId: 1 }, { principal: '', context: { principal: undefined } })
    // The answer waits for this instance's follow to bring the commit: let it catch up once the action committed.
    await new Promise((resolve) => setTimeout(resolve, 100))
    storage.release()
    expect((await answer).type).toBe('accepted')
    const image = await storage.inner.load()
    // Observed: { version: 2, state: 11 } (10 + 1: the declared state, at version 1 where the store was null).
    expect(image.stores.get('level')).toEqual({ version: 2, state: 1 })
  })
})
