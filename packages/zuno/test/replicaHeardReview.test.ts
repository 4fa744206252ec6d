/**
 * Review probes (second review of actions): an action answered ahead of the stream waits for its
 * own event (`heard`). `it.fails` marks a probe that shows a problem.
 */
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, defineZuno } from '../src/index'
import { createUniverse } from '../src/server/index'
import { newClientId } from '../src/id'
import { until } from './support/until'
import { touchApp } from './support/touchApp'
import { serveUniverse } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const app = defineZuno({
  stores: { open: { initial: 0 }, right: { initial: 0 } },
  actions: {
    fillRight: { run: (tx) => tx.set('right', (n) => n + 1) },
    bumpOpen: { run: (tx) => tx.set('open', (n) => n + 1) },
  },
})

describe('review 2: an answered action waiting for an event the stream will not bring', () => {
  // Problem: the stream's read check is decided once per connection (syncServer #readable caches it),
  // the answer's per request. A principal granted read of `right` while its stream is open gets the
  // answer with `right`'s state, ahead of what it holds (version 0, never streamed): the action is
  // `heard` and waits for its own event, which this stream filters out. It stays pending (and every
  // op queued after it waits) until the stream reconnects. Before 24bb927 the answer retired it.
  it('retires an action on its answer when its store became readable while the stream was open (review 2, problem 2)', async () => {
    let granted = false
    const universe = createUniverse({ app })
    await universe.ready
    const served = await serveUniverse(universe, {
      authenticate: () => ({ id: 'ada' }),
      authorize: ({ storeKey, action }) => action === 'write' || storeKey !== 'right' || granted,
    })
    cleanups.push(() => served.close())
    const { url } = served
    const replica = connect({ url, EventSource, tabs: false, app })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    // Others fill `right` (version 2) while ada may not read it.
    const caller = { principal: 'bob', context: { principal: undefined } }
    const bob = newClientId()
    for (const opId of [1, 2]) expect((await universe.proposeAction({ action: 'fillRight', epoch: universe.epoch, clientId: bob, opId }, caller)).type).toBe('accepted')
    // ada is granted read of `right` (she joined the team); her stream stays open.
    granted = true
    const acted = replica.act('fillRight').then(() => 'accepted', (error: Error) => `refused: ${error.message}`)
    const after = replica.act('bumpOpen').then(() => 'accepted', (error: Error) => `refused: ${error.message}`)
    // The patience for its own event is 3 s: well within 8 s, both settle.
    const timeout = new Promise((resolve) => setTimeout(() => resolve('still pending after 8 s'), 8000))
    await until(() => universe.store('right').version === 3)
    // Before the fix: both 'still pending after 3 s' and for good: the server applied fillRight (right at v3); bumpOpen never went.
    expect([await Promise.race([acted, timeout]), await Promise.race([after, timeout])]).toEqual(['accepted', 'accepted'])
    expect(replica.pending.get()).toBe(0)
  })
})

/** An EventSource whose `state` and `commit` events reach the replica `ms` late, in order (a lagging instance or proxy). */
function laggingEventSource(ms: number) {
  return class extends EventSource {
    override addEventListener(type: string, listener: never): void {
      const call = listener as (event: MessageEvent<string>) => void
      if (type !== 'state' && type !== 'commit') return super.addEventListener(type, call)
      super.addEventListener(type, (event: MessageEvent<string>) => void setTimeout(() => call(event), ms))
    }
  }
}

describe('review 2: an answer ahead of the stream, on a store the stream does not follow', () => {
  // Problem: opLifecycle #aheadOfStream looks only at stores the stream follows. The answer's state
  // of an unfollowed store (`right`) already holds another client's move, and is shown at once, while
  // the followed `left` waits for the lagging stream to bring that move: half of it shows.
  // Known: a store the stream does not follow shows what answers bring, which may be ahead of the followed ones (docs/actions.md).
  it.fails('never shows half of another commit on a replica following `left` only, whose answer brings `right`', async () => {
    const universe = createUniverse({ app: touchApp })
    await universe.ready
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    const { url } = served
    const lagging = connect({ url, EventSource: laggingEventSource(300), tabs: false, app: touchApp, stores: ['left'] })
    const other = connect({ url, EventSource, tabs: false, app: touchApp })
    cleanups.push(() => lagging.close(), () => other.close())
    await until(() => lagging.status.get() === 'connected' && other.status.get() === 'connected')
    const views: Array<[number, number]> = []
    const left = lagging.store('left')
    const right = lagging.store('right')
    left.subscribe(() => views.push([left.get(), right.get()]))
    right.subscribe(() => views.push([left.get(), right.get()]))
    await other.act('move')
    await lagging.act('touchRight')
    await until(() => left.get() === 9 && right.get() === 1)
    // Observed: [10, 1] from the answer until the stream brings the move to `left`.
    expect(views.filter(([l, r]) => l + r !== 10)).toEqual([])
  })
})
