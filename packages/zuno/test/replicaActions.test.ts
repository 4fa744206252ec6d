/**
 * Actions on a replica, against a real server over HTTP on 127.0.0.1 and the real `eventsource`
 * client: the optimistic effect, the one queue shared with `set`, settling from the answer or the
 * echo, refusals, retries of a lost answer, the outbox, and the `commit` event shown as one change.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, defineZuno, type ReplicaOptions, refuseAction, type ServerAction, type ZunoError } from '../src/index'
import { createMemoryStorage, createNodeHandler, createUniverse, type Storage } from '../src/server/index'
import { createTestRig } from '../src/testing/index'
import { SimBrowser } from './simulation/simBrowser'
import type { VirtualClock } from './simulation/virtualClock'
import { numberField } from './support/numberField'
import { memoryOutbox } from './support/memoryOutbox'
import { until } from './support/until'
import { startProxy } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const app = defineZuno({
  stores: {
    counter: { initial: 0 },
    left: { initial: 10 },
    right: { initial: 0 },
  },
  actions: {
    increment: { args: numberField('by'), run: (tx, { by }) => tx.set('counter', (n) => n + by) },
    /** Moves `amount` from `left` to `right`; refuses to overdraw `left`. */
    move: {
      args: numberField('amount'),
      run: (tx, { amount }) => {
        if (tx.get('left') < amount) refuseAction(`left holds less than ${amount}`)
        tx.set('left', (n) => n - amount)
        tx.set('right', (n) => n + amount)
      },
    },
    /** Reads one store and writes another: its effect must follow what `counter` shows. */
    copyCounter: { run: (tx) => tx.set('right', tx.get('counter')) },
    /** Takes from `left`; the server's own implementation refuses it (a rule the client does not know). */
    withdraw: { args: numberField('amount'), run: (tx, { amount }) => tx.set('left', (n) => n - amount) },
  },
})

/** Serves `app` with core's node:http handler on 127.0.0.1; `actions` replace some actions' `run` on the server. */
async function serve(actions: Record<string, ServerAction> = {}, storage?: Storage) {
  const universe = createUniverse({ app, actions, ...(storage === undefined ? {} : { storage }) })
  await universe.ready
  // Two replicas on one address share a rate bucket; the concurrency test sends 100 ops at once.
  const handler = createNodeHandler(universe, { maxProposalsPerSecond: 10_000 })
  const posts: string[] = []
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST') {
      let body = ''
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8')
      })
      req.on('end', () => posts.push(body))
    }
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  cleanups.push(async () => {
    handler.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await universe.close()
  })
  return { universe, port, url: `http://127.0.0.1:${port}/zuno`, posts }
}

/** A replica of `app` at `url`, connected, closed after the test. */
async function replicaOf(url: string, options: Omit<Partial<ReplicaOptions>, 'schemas' | 'initial' | 'actions'> = {}) {
  const replica = connect({ url, EventSource, tabs: false, app, ...options })
  cleanups.push(() => replica.close())
  await until(() => replica.status.get() === 'connected')
  return replica
}

/** The real clock, as much of it as the simulated browser (its BroadcastChannel and Web Locks) uses. */
const realClock = { get now() { return Date.now() }, setTimeout: (run: () => void, ms: number) => setTimeout(run, ms) } as unknown as VirtualClock

/** The parsed bodies of the action proposals a server received. */
const actionBodies = (posts: readonly string[]) => posts.map((post) => JSON.parse(post) as { action?: string }).filter((body) => body.action !== undefined)

describe('replica.act', () => {
  it('shows the effect at once, then the server confirms it', async () => {
    const { universe, url } = await serve()
    const replica = await replicaOf(url)
    const counter = replica.store('counter')
    const accepted = replica.act('increment', { by: 2 })
    // Before any answer: the local run's effect, and one op pending.
    expect(counter.get()).toBe(2)
    expect(replica.pending.get()).toBe(1)
    await accepted
    expect([counter.get(), counter.version, replica.pending.get()]).toEqual([2, 1, 0])
    expect(universe.store('counter').get()).toBe(2)
  })

  it('shows a move between two stores as one change, on the mover and on another replica (the commit event)', async () => {
    const { universe, url } = await serve()
    const mover = await replicaOf(url)
    const watcher = await replicaOf(url)
    const sums: number[] = []
    for (const replica of [mover, watcher]) {
      const left = replica.store('left')
      const right = replica.store('right')
      // Inside each listener, both stores already show the same change: the sum never moves.
      left.subscribe(() => sums.push(left.get() + right.get()))
      right.subscribe(() => sums.push(left.get() + right.get()))
    }
    await Promise.all([mover.act('move', { amount: 3 }), mover.act('move', { amount: 4 })])
    await until(() => watcher.store('right').get() === 7)
    expect([mover.store('left').get(), mover.store('right').get()]).toEqual([3, 7])
    expect([watcher.store('left').get(), watcher.store('right').get()]).toEqual([3, 7])
    expect([universe.store('left').get(), universe.store('right').get()]).toEqual([3, 7])
    expect(sums.length).toBeGreaterThanOrEqual(4)
    expect(new Set(sums)).toEqual(new Set([10]))
  })

  it('ends at exactly 100 after two replicas increment 50 times each at once, none refused', async () => {
    const { universe, url } = await serve()
    const a = await replicaOf(url)
    const b = await replicaOf(url)
    const calls = [a, b].flatMap((replica) => Array.from({ length: 50 }, () => replica.act('increment', { by: 1 }).then(() => 'accepted', (error: ZunoError) => error.code)))
    const outcomes = await Promise.all(calls)
    expect(outcomes.filter((outcome) => outcome !== 'accepted')).toEqual([])
    expect(universe.store('counter').get()).toBe(100)
    await until(() => a.store('counter').get() === 100 && b.store('counter').get() === 100)
  })

  it('(the same with set under the rollback policy refuses some: the reason actions exist)', async () => {
    const { universe, url } = await serve()
    const a = await replicaOf(url, { conflictPolicy: 'rollback' })
    const b = await replicaOf(url, { conflictPolicy: 'rollback' })
    const calls = [a, b].flatMap((replica) => Array.from({ length: 50 }, () => replica.store('counter').set((n) => n + 1).then(() => 'accepted', (error: ZunoError) => error.code)))
    const outcomes = await Promise.all(calls)
    const refused = outcomes.filter((outcome) => outcome === 'conflict').length
    expect(refused).toBeGreaterThan(0)
    expect(universe.store('counter').get()).toBe(100 - refused)
  })

  it('keeps its place after an earlier set of the same store: the set goes first', async () => {
    const { universe, url, posts } = await serve()
    const replica = await replicaOf(url)
    const counter = replica.store('counter')
    const set = counter.set(5)
    const acted = replica.act('increment', { by: 1 })
    expect(counter.get()).toBe(6)
    await Promise.all([set, acted])
    // Had the action overtaken the plain set, the server would hold 5.
    expect(universe.store('counter').get()).toBe(6)
    expect(counter.get()).toBe(6)
    const order = posts.map((post) => JSON.parse(post) as { opId: number; action?: string; storeKey?: string })
    expect(order.map(({ opId, action, storeKey }) => [opId, action ?? storeKey])).toEqual([
      [1, 'counter'],
      [2, 'increment'],
    ])
  })

  it('runs again when a store it read changes under it (rebase), before the server has run it', async () => {
    const { universe, url } = await serve()
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    // This replica's proposals wait until released; its stream does not.
    const heldFetch: typeof fetch = (input, init) => (init?.method === 'POST' ? held.then(() => fetch(input, init)) : fetch(input, init))
    const copier = await replicaOf(url, { fetch: heldFetch })
    const writer = await replicaOf(url)
    const acted = copier.act('copyCounter')
    expect(copier.store('right').get()).toBe(0)
    await writer.store('counter').set(7)
    // `right` follows what `counter` shows, though the action was run before the 7 arrived.
    await until(() => copier.store('counter').get() === 7)
    expect(copier.store('right').get()).toBe(7)
    release()
    await acted
    expect(universe.store('right').get()).toBe(7)
    expect(copier.store('right').get()).toBe(7)
  })

  it('rejects with the server refusal and takes its effect back; the refusal used its id', async () => {
    const { universe, url, posts } = await serve({ withdraw: () => refuseAction('the account is closed') })
    const replica = await replicaOf(url)
    const left = replica.store('left')
    const refused = replica.act('withdraw', { amount: 4 }).catch((error: ZunoError) => error)
    expect(left.get()).toBe(6)
    const error = (await refused) as ZunoError
    expect([error.code, error.message]).toEqual(['action_refused', 'the account is closed'])
    expect(left.get()).toBe(10)
    expect(replica.lastError.get()?.code).toBe('action_refused')
    // Recorded by the server: the next op takes the next id.
    await left.set(9)
    expect(posts.map((post) => (JSON.parse(post) as { opId: number }).opId)).toEqual([1, 2])
    expect(universe.store('left').get()).toBe(9)
  })

  it('shows nothing of an action its own run refuses, and still lets the server decide', async () => {
    const { universe, url } = await serve()
    const replica = await replicaOf(url)
    const refused = replica.act('move', { amount: 11 }).catch((error: ZunoError) => error)
    expect([replica.store('left').get(), replica.store('right').get(), replica.pending.get()]).toEqual([10, 0, 1])
    expect(((await refused) as ZunoError).code).toBe('action_refused')
    expect(universe.store('left').version).toBe(0)
  })

  it('rejects arguments its schema refuses at once, with nothing queued or sent', async () => {
    const { url, posts } = await serve()
    const replica = await replicaOf(url)
    const refused = replica.act('increment', { by: 'one' } as unknown as { by: number }).catch((error: ZunoError) => error)
    expect(replica.pending.get()).toBe(0)
    const error = (await refused) as ZunoError
    expect(error.code).toBe('invalid_args')
    expect(error.issues).toEqual([{ message: 'by: a number' }])
    // The next op takes id 1: nothing was used.
    await replica.act('increment', { by: 1 })
    expect(posts.map((post) => (JSON.parse(post) as { opId: number }).opId)).toEqual([1])
  })

  it('rejects an action the server does not know with unknown_action; recorded, so the next op takes the next id', async () => {
    const { universe, url, posts } = await serve()
    const replica = connect({ url, EventSource, tabs: false })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const refused = replica.act('notDeployedYet').catch((error: ZunoError) => error)
    const counter = replica.store<number>('counter')
    const set = counter.set(3)
    expect(((await refused) as ZunoError).code).toBe('unknown_action')
    expect(await set).toBe(1)
    expect(posts.map((post) => (JSON.parse(post) as { opId: number }).opId)).toEqual([1, 2])
    expect(universe.store('counter').get()).toBe(3)
  })

  it('sends an action the local app does not define as it is, with no effect until the server has run it', async () => {
    const { universe, url } = await serve({ reset: (tx) => tx.set('counter', 42) })
    // No app here: any name, no local run.
    const replica = connect({ url, EventSource, tabs: false })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const counter = replica.store<number>('counter')
    await until(() => counter.get() === 0)
    const acted = replica.act('reset')
    expect(counter.get()).toBe(0)
    await acted
    expect([counter.get(), universe.store('counter').get()]).toEqual([42, 42])
  })

  /** A server behind a proxy that forwards the first action and drops its answer: the server applied what the replica never hears of. */
  async function answerLost() {
    const zuno = await serve()
    let actionsSeen = 0
    const proxy = await startProxy(zuno, (req: IncomingMessage, body) =>
      req.method === 'POST' && (JSON.parse(body) as { action?: string }).action !== undefined && ++actionsSeen === 1 ? { status: 0, afterForwarding: true } : undefined,
    )
    cleanups.push(proxy.close)
    return { zuno, url: proxy.url }
  }

  it('retries an action whose answer was lost with the same body, applied once', async () => {
    const { zuno, url } = await answerLost()
    // This replica does not follow `counter`: no echo can settle the action, only the retry's answer.
    const replica = await replicaOf(url, { stores: ['left'] })
    await replica.act('increment', { by: 5 })
    const sent = actionBodies(zuno.posts)
    expect(sent).toHaveLength(2)
    // The same op, marked as a resend of an attempt in doubt.
    expect(sent[1]).toEqual({ ...sent[0], resentAfterMs: expect.any(Number) })
    expect([zuno.universe.store('counter').get(), zuno.universe.store('counter').version]).toEqual([5, 1])
    expect([replica.store('counter').get(), replica.store('counter').version]).toEqual([5, 1])
  })

  /**
   * A server that forgets clients after 1 s of its clock, behind a proxy that loses the first
   * action (its answer, after forwarding it, or the request itself) and then moves both clocks on
   * by `advanceMs`: the retry meets a server with no record of the client.
   */
  async function forgetful(lose: 'answer' | 'request', advanceMs: number) {
    let clock = Date.now()
    const zuno = await serve({}, createMemoryStorage({ clientLifetimeMs: 1000, now: () => clock }))
    let actionsSeen = 0
    const proxy = await startProxy(zuno, (req: IncomingMessage, body) => {
      if (req.method !== 'POST' || (JSON.parse(body) as { action?: string }).action === undefined || ++actionsSeen !== 1) return undefined
      // Once the server has processed it (well before the replica's first retry, 100 ms or more later).
      setTimeout(() => (clock += advanceMs), 30)
      return { status: 0, afterForwarding: lose === 'answer' }
    })
    cleanups.push(proxy.close)
    const replica = await replicaOf(proxy.url, { stores: ['left'], now: () => clock })
    return { zuno, replica }
  }

  it('does not run a resent first action again on a server that has since forgotten its client: outcome_unknown', async () => {
    const { zuno, replica } = await forgetful('answer', 5000)
    await expect(replica.act('increment', { by: 5 })).rejects.toMatchObject({ code: 'outcome_unknown' })
    // Applied once, by the attempt whose answer was lost; the resend was refused, not run.
    expect(zuno.universe.store('counter').get()).toBe(5)
    const bodies = actionBodies(zuno.posts) as Array<{ resentAfterMs?: number }>
    expect(bodies.map((body) => body.resentAfterMs)).toEqual([undefined, 5000])
    // The replica goes on under a fresh identity.
    await replica.act('increment', { by: 1 })
    expect(zuno.universe.store('counter').get()).toBe(6)
  })

  it('runs a resent first action that the server cannot have seen before its record would expire', async () => {
    const { zuno, replica } = await forgetful('request', 100)
    await replica.act('increment', { by: 5 })
    expect(zuno.universe.store('counter').get()).toBe(5)
  })

  it('is settled by its echo on the stream when its answer is lost', async () => {
    const { zuno, url } = await answerLost()
    const replica = await replicaOf(url)
    await replica.act('move', { amount: 1 })
    await replica.act('increment', { by: 1 })
    // The commit's echo retired the move: it was sent once, and the next op went on.
    expect(actionBodies(zuno.posts).map((body) => body.action)).toEqual(['move', 'increment'])
    expect([replica.store('left').get(), replica.store('right').get(), replica.store('counter').get()]).toEqual([9, 1, 1])
  })

  it('shows every store an action wrote, from its answer, on a replica whose stream follows only some', async () => {
    const { universe, url } = await serve()
    // The stream carries the move's part for `left` only (a state event, the echo); the answer carries both.
    const replica = await replicaOf(url, { stores: ['left'] })
    await replica.act('move', { amount: 3 })
    await until(() => replica.store('right').version === 1)
    expect([replica.store('left').get(), replica.store('right').get()]).toEqual([7, 3])
    expect([universe.store('left').get(), universe.store('right').get()]).toEqual([7, 3])
  })

  it('keeps a pending action in the outbox and proposes it again after a reload', async () => {
    const { universe, url } = await serve()
    const { outbox, entries } = memoryOutbox()
    // The first session is offline: its action waits in the outbox.
    const offline: typeof fetch = (input, init) => (init?.method === 'POST' ? Promise.reject(new TypeError('offline')) : fetch(input, init))
    const first = await replicaOf(url, { outbox, fetch: offline })
    const lost = first.act('move', { amount: 2 }).catch((error: ZunoError) => error.code)
    await until(() => [...entries.values()].some((entry) => 'action' in entry && entry.sentOn !== undefined))
    expect(first.store('right').get()).toBe(2)
    first.close()
    expect(await lost).toBe('closed')
    // Closed: what it shows is the server's, without the action's effect.
    expect([first.store('left').get(), first.store('right').get()]).toEqual([10, 0])
    const [entry] = [...entries.values()]
    expect(entry).toMatchObject({ action: 'move', args: { amount: 2 }, opId: 1, sentOn: { epoch: universe.epoch } })
    // The next session restores it: its effect shows again (run here), and it goes, once.
    const second = connect({ url, EventSource, tabs: false, app, outbox })
    cleanups.push(() => second.close())
    await until(() => second.store('right').get() === 2)
    await until(() => second.pending.get() === 0 && entries.size === 0)
    expect([universe.store('left').get(), universe.store('right').get()]).toEqual([8, 2])
    expect([second.store('left').get(), second.store('right').get()]).toEqual([8, 2])
  })

  it('relays a commit from the leader tab to the others, shown as one change there', async () => {
    const { url } = await serve()
    const browser = new SimBrowser(realClock, () => 1)
    const tab = (name: string) => {
      const replica = connect({ url, EventSource, app, tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name) })
      cleanups.push(() => replica.close())
      return replica
    }
    const leader = tab('a')
    await until(() => leader.status.get() === 'connected')
    const follower = tab('b')
    await until(() => follower.status.get() === 'connected')
    const sums: number[] = []
    const left = follower.store('left')
    const right = follower.store('right')
    left.subscribe(() => sums.push(left.get() + right.get()))
    right.subscribe(() => sums.push(left.get() + right.get()))
    const outsider = await replicaOf(url)
    await outsider.act('move', { amount: 6 })
    await until(() => right.get() === 6)
    expect(left.get()).toBe(4)
    expect(new Set(sums)).toEqual(new Set([10]))
  })
})

describe('actions under faults', () => {
  it('applies each of 90 increments exactly once through a proxy that loses answers and fails with 502s', async () => {
    const zuno = await serve()
    // Seeded, so a failure replays: about one action in five loses its answer, one in ten meets a 502 before the server.
    let seed = 7
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    const proxy = await startProxy(zuno, (req: IncomingMessage) => {
      if (req.method !== 'POST') return undefined
      const roll = random()
      if (roll < 0.2) return { status: 0, afterForwarding: true }
      if (roll < 0.3) return { status: 502, body: '<html>502 Bad Gateway</html>' }
      return undefined
    })
    cleanups.push(proxy.close)
    // Two follow `counter` (echoes may settle their actions), one does not (only the answers can).
    const replicas = await Promise.all([replicaOf(proxy.url), replicaOf(proxy.url), replicaOf(proxy.url, { stores: ['left'] })])
    const outcomes = await Promise.all(
      replicas.flatMap((replica) => Array.from({ length: 30 }, () => replica.act('increment', { by: 1 }).then(() => 'accepted', (error: ZunoError) => error.code))),
    )
    expect(outcomes.filter((outcome) => outcome !== 'accepted')).toEqual([])
    expect([zuno.universe.store('counter').get(), zuno.universe.store('counter').version]).toEqual([90, 90])
    await until(() => replicas.slice(0, 2).every((replica) => replica.store('counter').get() === 90))
  }, 30_000)
})

describe('actions through the test rig', () => {
  it('runs typed actions in process, a commit reaching every replica as one change', async () => {
    const rig = createTestRig({ app })
    cleanups.push(() => rig.close())
    const mover = rig.connect()
    const watcher = rig.connect()
    await mover.act('move', { amount: 2 })
    await mover.act('increment', { by: 5 })
    await rig.settled()
    expect([watcher.store('left').get(), watcher.store('right').get(), watcher.store('counter').get()]).toEqual([8, 2, 5])
    expect(rig.server.store('right').get()).toBe(2)
  })
})

describe('actions and the other tabs', () => {
  it('shows a pending action over another tab’s pending set of the same store', async () => {
    const { universe, url } = await serve()
    const browser = new SimBrowser(realClock, () => 1)
    /** A tab whose proposals wait until `release()`; its stream does not. */
    const tab = (name: string) => {
      let release = () => {}
      const held = new Promise<void>((resolve) => {
        release = resolve
      })
      const heldFetch: typeof fetch = (input, init) => (init?.method === 'POST' ? held.then(() => fetch(input, init)) : fetch(input, init))
      const replica = connect({ url, EventSource, app, fetch: heldFetch, tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name) })
      cleanups.push(() => replica.close())
      return { replica, release }
    }
    const a = tab('a')
    await until(() => a.replica.status.get() === 'connected')
    const b = tab('b')
    await until(() => b.replica.status.get() === 'connected')
    const set = a.replica.store('counter').set(5)
    await until(() => b.replica.store('counter').get() === 5)
    const acted = b.replica.act('increment', { by: 1 })
    // b shows a's pending 5 with its own increment over it (as it would an updater of its own).
    expect(b.replica.store('counter').get()).toBe(6)
    a.release()
    await set
    b.release()
    await acted
    expect(universe.store('counter').get()).toBe(6)
    await until(() => a.replica.store('counter').get() === 6 && b.replica.store('counter').get() === 6)
  })
})

describe('act is typed from the app', () => {
  it('takes only the app’s action names and their argument types', async () => {
    const { url } = await serve()
    const replica = await replicaOf(url)
    const calls = [
      // @ts-expect-error: no such action
      () => replica.act('decrement', { by: 1 }),
      // @ts-expect-error: `by` is a number
      () => replica.act('increment', { by: '1' }),
      // @ts-expect-error: `increment` takes arguments
      () => replica.act('increment'),
      // An action without a schema takes none.
      () => replica.act('copyCounter'),
    ]
    expect(calls).toHaveLength(4)
  })
})
