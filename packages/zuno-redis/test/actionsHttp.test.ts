/**
 * Actions through HTTP on two instances sharing one Redis: clients of both move units between two
 * stores at once, and every version any stream shows conserves the total.
 */
import { describe, expect, it } from 'vitest'
import { EventSource } from 'eventsource'
import { connect, defineZuno, newClientId } from 'zuno'
import { openRawStream } from '../../zuno/test/support/sseReader'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, post, startInstance, state } from './support'

const haveRedis = await redisAvailable()

/** What the replicas know of the instances' stores and their `move` (run optimistically here; the instances run their own). */
const accounts = defineZuno({
  stores: { a: { initial: 100 }, b: { initial: 100 } },
  actions: {
    move: {
      args: {
        '~standard': {
          version: 1,
          vendor: 'test',
          validate: (value: unknown) =>
            typeof value === 'object' && value !== null ? { value: value as { from: 'a' | 'b'; to: 'a' | 'b' } } : { issues: [{ message: 'an object' }] },
        },
      },
      run: (tx, { from, to }) => {
        tx.set(from, (units) => units - 1)
        tx.set(to, (units) => units + 1)
      },
    },
  },
})

describe.skipIf(!haveRedis)('actions over HTTP on two instances', () => {
  it('conserves the sum of two stores at every version any stream shows, under concurrent moves from both', async () => {
    const ns = namespace()
    const [one, two] = await Promise.all([startInstance(ns), startInstance(ns)])
    const streams = await Promise.all([one, two].map((instance) => openRawStream(`${instance.url}/sse?stores=a,b`)))
    cleanups.push(() => streams.forEach((stream) => stream.close()))
    const seen = streams.map(() => ({ a: 100, b: 100, sums: [] as number[], events: 0 }))
    const reading = streams.map(async (stream, index) => {
      const view = seen[index] as (typeof seen)[number]
      for (;;) {
        const event = await stream.nextEvent(10_000).catch(() => undefined)
        if (event === undefined) return
        if (event.event === 'snapshot') {
          const { stores } = JSON.parse(event.data ?? '') as { stores: Record<string, { state: number }> }
          view.a = stores.a?.state ?? 100
          view.b = stores.b?.state ?? 100
          continue
        }
        const data = JSON.parse(event.data ?? '{}') as { changes?: Array<{ storeKey: 'a' | 'b'; state: number }>; storeKey?: 'a' | 'b'; state?: number }
        for (const change of data.changes ?? [data as { storeKey: 'a' | 'b'; state: number }]) view[change.storeKey] = change.state
        view.sums.push(view.a + view.b)
        view.events += 1
      }
    })
    const { epoch } = await state(one.url)
    const clients = [one, two, one, two, one, two]
    const statuses: number[] = []
    await Promise.all(
      clients.map(async (instance, index) => {
        const clientId = newClientId()
        for (let opId = 1; opId <= 40; opId++) {
          const [from, to] = (index + opId) % 2 === 0 ? ['a', 'b'] : ['b', 'a']
          const { status, body } = await post(instance.url, { action: 'move', args: { from, to }, epoch, clientId, opId })
          statuses.push(status)
          expect(body).toMatchObject({ ok: true, changes: [{ storeKey: from }, { storeKey: to }] })
        }
      }),
    )
    expect(statuses.filter((status) => status !== 200)).toEqual([])
    // Every commit reached both streams, each as one event carrying both stores.
    await until(() => seen.every((view) => view.events === 240), 10_000)
    for (const view of seen) expect(new Set(view.sums)).toEqual(new Set([200]))
    const [first, second] = await Promise.all([state(one.url), state(two.url)])
    expect(first.stores.a).toEqual(second.stores.a)
    expect((first.stores.a?.state as number) + (first.stores.b?.state as number)).toBe(200)
    expect((first.stores.a?.version ?? 0) + 0).toBe(240)
    for (const stream of streams) stream.close()
    await Promise.all(reading)
  }, 60_000)
  it('shows the same sum on every replica at every notification, optimistic or confirmed, under concurrent moves through both instances', async () => {
    const ns = namespace()
    const [one, two] = await Promise.all([startInstance(ns), startInstance(ns)])
    const replicas = [one, two, one, two].map((instance) => connect({ app: accounts, url: instance.url, EventSource, tabs: false }))
    cleanups.push(() => replicas.forEach((replica) => replica.close()))
    await until(() => replicas.every((replica) => replica.status.get() === 'connected'), 10_000)
    const sums = new Set<number>()
    for (const replica of replicas) {
      const look = () => sums.add(replica.store('a').get() + replica.store('b').get())
      replica.store('a').subscribe(look)
      replica.store('b').subscribe(look)
    }
    await Promise.all(
      replicas.map(async (replica, index) => {
        const moves: Array<Promise<void>> = []
        for (let i = 0; i < 25; i++) moves.push(replica.act('move', (index + i) % 2 === 0 ? { from: 'a', to: 'b' } : { from: 'b', to: 'a' }))
        await Promise.all(moves)
      }),
    )
    // Every move answered, on either instance: `one` shows the last of them once its follow of Redis has brought it.
    let truth = await state(one.url)
    await until(async () => (truth = await state(one.url)).stores.a?.version === 100, 10_000)
    expect(truth.stores.a?.version).toBe(100)
    await until(() => replicas.every((replica) => replica.store('a').version === 100 && replica.store('b').version === 100), 10_000)
    for (const replica of replicas) expect(replica.store('a').get()).toBe(truth.stores.a?.state)
    expect(sums.size).toBeGreaterThan(0)
    expect([...sums]).toEqual([200])
  }, 60_000)
})
