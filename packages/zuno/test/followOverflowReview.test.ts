/**
 * Review of the cap of stores per stream, against a real server on 127.0.0.1 with the real
 * `eventsource` client: a store past the cap is not on the stream, and nothing may wait for it there.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, defineZuno } from '../src/index'
import { MAX_STORES_PER_STREAM } from '../src/protocol'
import { createUniverse } from '../src/server/index'
import { SimBrowser } from './simulation/simBrowser'
import type { VirtualClock } from './simulation/virtualClock'
import { until } from './support/until'
import { serveUniverse } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const aString: StandardSchemaV1<unknown, string> = {
  '~standard': { version: 1, vendor: 'test', validate: (value) => (typeof value === 'string' ? { value } : { issues: [{ message: 'a string' }] }) },
}

const app = defineZuno({
  stores: { 'doc:{id}': { initial: { title: '' } } },
  actions: {
    rename: { args: aString, run: (tx, id) => tx.set(`doc:${id}`, { title: `renamed ${id}` }) },
  },
})

describe('a store followed past MAX_STORES_PER_STREAM', () => {
  it('is not waited for on the stream: an action that changes it settles on its answer, at once', async () => {
    const universe = createUniverse({ app })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await universe.store('doc:x').set({ title: 'x' })
    const codes: string[] = []
    const replica = connect({ url: served.url, EventSource, app, tabs: false, stores: [] })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    for (let i = 0; i < MAX_STORES_PER_STREAM; i++) replica.follow(`doc:${i}`)
    // One too many: reported, and not on the stream.
    replica.follow('doc:x')
    await until(() => replica.lastError.get()?.code === 'too_many_stores')
    codes.push(replica.lastError.get()?.code ?? '')
    const started = Date.now()
    await replica.act('rename', 'x')
    // The stream will never bring the action's event for this store: the answer is all there is.
    expect(Date.now() - started).toBeLessThan(1500)
    expect(universe.store('doc:x').get()).toEqual({ title: 'renamed x' })
    expect(codes).toEqual(['too_many_stores'])
  })
})

const realClock = { get now() { return Date.now() }, setTimeout: (run: () => void, ms: number) => setTimeout(run, ms) } as unknown as VirtualClock

describe('a follower tab whose follow the leader cannot carry (its stream is at MAX_STORES_PER_STREAM)', () => {
  it('is told so, in the tab that followed', async () => {
    const universe = createUniverse({ app })
    const served = await serveUniverse(universe)
    cleanups.push(() => served.close())
    await universe.store('doc:x').set({ title: 'x' })
    const browser = new SimBrowser(realClock, () => 1)
    const tab = (name: string) => {
      const replica = connect({ url: served.url, EventSource, app, stores: [], tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name) })
      cleanups.push(() => replica.close())
      return replica
    }
    const leader = tab('leader')
    await until(() => leader.status.get() === 'connected')
    for (let i = 0; i < MAX_STORES_PER_STREAM; i++) leader.follow(`doc:${i}`)
    const follower = tab('follower')
    await until(() => follower.status.get() === 'connected')
    follower.follow('doc:x')
    await until(() => leader.lastError.get()?.code === 'too_many_stores')
    // The leader knows; the tab that followed, and waits for a state that will not come, does not.
    await until(() => follower.lastError.get()?.code === 'too_many_stores', 2000)
  })
})
