/** Actions on Redis: one commit of several stores, serializable across instances, exactly once. */
import { describe, expect, it } from 'vitest'
import { defineZuno, isZunoError, newClientId, refuseAction } from 'zuno'
import { type ActionResult, type CommittedEvent, createUniverse, writerTag } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { createRedisStorage, type RedisStorageOptions } from '../src/index'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, redisClient } from './support'

const haveRedis = await redisAvailable()

/** Two accounts `a` and `b` that actions move units between, and two on-call flags `x` and `y` that must not both be 0. */
const app = defineZuno({
  stores: { a: { initial: 100 }, b: { initial: 100 }, x: { initial: 1 }, y: { initial: 1 } },
  actions: {
    moveAB: {
      run: (tx) => {
        tx.set('a', (units) => units - 1)
        tx.set('b', (units) => units + 1)
      },
    },
    moveBA: {
      run: (tx) => {
        tx.set('b', (units) => units - 1)
        tx.set('a', (units) => units + 1)
      },
    },
    depositA: { run: (tx) => tx.set('a', (units) => units + 1) },
    /** Reads both accounts, writes nothing. */
    look: {
      run: (tx) => {
        tx.get('a')
        tx.get('b')
      },
    },
    /** Writes `x` on a decision that depends on `y`, which it only reads: the classic write skew. */
    leaveX: {
      run: (tx) => {
        if (tx.get('y') === 0) refuseAction('y is off call')
        tx.set('x', 0)
      },
    },
    leaveY: {
      run: (tx) => {
        if (tx.get('x') === 0) refuseAction('x is off call')
        tx.set('y', 0)
      },
    },
    rejoin: {
      run: (tx) => {
        tx.set('x', 1)
        tx.set('y', 1)
      },
    },
  },
})

const caller = { principal: '', context: { principal: undefined } }

/** A server instance of the app on its own Redis storage (counting the outcomes of its action commits); both closed after the test. */
function openInstance(ns: string, options: Partial<RedisStorageOptions> = {}) {
  const storage = createRedisStorage({ namespace: ns, ...options })
  const outcomes = new Map<string, number>()
  const commitAction = storage.commitAction?.bind(storage)
  storage.commitAction = async (request) => {
    const outcome = await (commitAction as NonNullable<typeof commitAction>)(request)
    outcomes.set(outcome.type, (outcomes.get(outcome.type) ?? 0) + 1)
    return outcome
  }
  const universe = createUniverse({ app, storage })
  cleanups.push(async () => {
    await universe.close()
    await storage.close()
  })
  return Object.assign(universe, { storage, outcomes })
}

type Instance = ReturnType<typeof openInstance>

/** One client's ops, numbered 1, 2, 3, … */
function client() {
  const clientId = newClientId()
  let opId = 0
  return { clientId, writer: writerTag(clientId), next: (action: string) => ({ action, clientId, opId: ++opId }) }
}

/** Runs an action as a client would: the same op again while the server says `unavailable` (it lost every race, nothing landed). */
async function act(instance: Instance, op: { action: string; clientId: string; opId: number }): Promise<ActionResult> {
  for (;;) {
    try {
      return await instance.proposeAction({ ...op, epoch: instance.epoch }, caller)
    } catch (error) {
      if (!isZunoError(error) || error.code !== 'unavailable') throw error
    }
  }
}

/** The Stream's entries as field maps, in log order. */
async function streamEntries(ns: string): Promise<Array<{ id: string; fields: Record<string, string> }>> {
  const entries = await redisClient().xrange(`{${ns}}:log`, '-', '+')
  return entries.map(([id, flat]) => {
    const fields: Record<string, string> = {}
    for (let i = 0; i < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string
    return { id, fields }
  })
}

const storesOf = (instance: Instance) =>
  Object.fromEntries((['a', 'b', 'x', 'y'] as const).map((key) => [key, { version: instance.store(key).version, state: instance.store(key).get() }]))

describe.skipIf(!haveRedis)('zuno-redis actions', () => {
  it('commits an action over two stores as one Stream entry, which another instance follows as one event with both changes', async () => {
    const ns = namespace()
    const first = openInstance(ns)
    const second = openInstance(ns)
    await Promise.all([first.ready, second.ready])
    const followed: CommittedEvent[] = []
    second.storage.onCommit((event) => followed.push(event))
    const { clientId, writer, next } = client()

    const result = await act(first, next('moveAB'))
    expect(result).toEqual({
      type: 'accepted',
      changes: [
        { storeKey: 'a', version: 1, state: 99 },
        { storeKey: 'b', version: 1, state: 101 },
      ],
      cursor: `${first.epoch}-1`,
    })
    expect(first.store('a').get()).toBe(99) // the answer waits for this instance to apply its event

    const entries = await streamEntries(ns)
    // No patches: a number's patch is longer than the number, so none is kept.
    expect(entries).toEqual([{ id: '0-1', fields: { w: writer, o: '1', n: '2', k1: 'a', v1: '1', s1: '99', k2: 'b', v2: '1', s2: '101', e: '00' } }])
    expect(JSON.stringify(entries)).not.toContain(clientId)

    await until(() => followed.length === 1 && second.store('b').version === 1)
    expect(followed).toEqual([
      {
        storeKey: 'a',
        version: 1,
        state: 99,
        writer,
        opId: 1,
        seq: 1,
        id: `${first.epoch}-1`,
        stateBytes: 5,
        changes: [
          { storeKey: 'a', version: 1, state: 99, stateBytes: 2, existed: false },
          { storeKey: 'b', version: 1, state: 101, stateBytes: 3, existed: false },
        ],
      },
    ])
    expect(storesOf(second)).toEqual(storesOf(first))
    expect(second.since(`${first.epoch}-0`)?.map((entry) => entry.event.changes?.length)).toEqual([2])
  })

  it('writes a one-store action as the very entry a plain write makes, so instances without actions still read it', async () => {
    const ns = namespace()
    const instance = openInstance(ns)
    await instance.ready
    const actor = client()
    const writer = client()
    expect(await act(instance, actor.next('depositA'))).toMatchObject({ type: 'accepted', changes: [{ storeKey: 'a', version: 1, state: 101 }] })
    const plain = { storeKey: 'a', baseVersion: 1, epoch: instance.epoch, state: 102, clientId: writer.clientId, opId: 1 }
    expect(await instance.propose(plain, { principal: '' })).toMatchObject({ type: 'accepted', version: 2 })
    const [action, write] = (await streamEntries(ns)).map(({ fields }) => fields)
    // Neither carries a patch: the action's would be longer than its number, a client's whole state comes with none.
    expect(action).toEqual({ k: 'a', v: '1', s: '101', w: actor.writer, o: '1', e: '0' })
    expect(write).toEqual({ k: 'a', v: '2', s: '102', w: writer.writer, o: '1', e: '1' })
  })

  it('serializes concurrent actions from two instances: every unit kept, no write skew, every op applied exactly once', async () => {
    const ns = namespace()
    const instances = [openInstance(ns), openInstance(ns)] as const
    await Promise.all(instances.map((instance) => instance.ready))
    const moveLanes = 5
    const flagLanes = 2
    const opsPerLane = 40
    const pick = (actions: readonly string[]) => actions[Math.floor(Math.random() * actions.length)] as string
    type Done = { writer: string; opId: number; action: string; result: ActionResult }
    const done: Done[] = []
    // Each instance runs its clients at once, each client sending its ops one after another: 200 moves
    // per instance, and 80 flag actions that each decide on a store they only read.
    await Promise.all(
      instances.flatMap((instance) =>
        Array.from({ length: moveLanes + flagLanes }, async (_, lane) => {
          const { writer, next } = client()
          for (let i = 0; i < opsPerLane; i++) {
            const op = next(lane < moveLanes ? pick(['moveAB', 'moveBA']) : pick(['leaveX', 'leaveY', 'rejoin']))
            done.push({ writer, opId: op.opId, action: op.action, result: await act(instance, op) })
          }
        }),
      ),
    )
    const moves = done.filter(({ action }) => action.startsWith('move'))
    expect(moves).toHaveLength(2 * moveLanes * opsPerLane)
    expect(moves.every(({ result }) => result.type === 'accepted' && result.duplicate === undefined)).toBe(true)
    for (const { result } of done) {
      if (result.type === 'refused') expect(result.error.code).toBe('action_refused')
      else expect(result.duplicate).toBeUndefined()
    }
    const accepted = done.filter(({ result }) => result.type === 'accepted')

    // One entry per accepted op, its own; replayed in log order, the entries never break an invariant.
    const entries = await streamEntries(ns)
    expect(entries.map(({ id }) => id)).toEqual(Array.from({ length: accepted.length }, (_, i) => `0-${i + 1}`))
    const actionOf = new Map(accepted.map(({ writer, opId, action }) => [`${writer}/${opId}`, action]))
    expect(new Set(entries.map(({ fields }) => `${fields.w}/${fields.o}`))).toEqual(new Set(actionOf.keys()))
    const replayed: Record<'a' | 'b' | 'x' | 'y', { version: number; state: number }> = {
      a: { version: 0, state: 100 },
      b: { version: 0, state: 100 },
      x: { version: 0, state: 1 },
      y: { version: 0, state: 1 },
    }
    for (const { fields } of entries) {
      const changes = fields.k === undefined ? [1, 2].map((i) => [fields[`k${i}`], fields[`v${i}`], fields[`s${i}`]]) : [[fields.k, fields.v, fields.s]]
      const action = actionOf.get(`${fields.w}/${fields.o}`)
      // An action's changes come in the order it wrote: moveAB writes `a` first.
      expect(changes.map(([key]) => key).join('')).toBe({ moveAB: 'ab', moveBA: 'ba', leaveX: 'x', leaveY: 'y', rejoin: 'xy' }[action as string])
      for (const [key, version, state] of changes) {
        const store = replayed[key as keyof typeof replayed]
        expect(Number(version)).toBe(store.version + 1)
        store.version += 1
        store.state = Number(state)
      }
      expect(replayed.a.state + replayed.b.state).toBe(200)
      expect(replayed.x.state + replayed.y.state).toBeGreaterThan(0)
    }

    // Each move's answer names its own commit: every version of `a` made exactly once.
    const versions = moves.map(({ result }) => (result.type === 'accepted' ? result.changes.find((change) => change.storeKey === 'a')?.version : undefined))
    expect(new Set(versions).size).toBe(moves.length)
    expect(replayed.a.version).toBe(moves.length)

    const redis = redisClient()
    for (const [key, { version, state }] of Object.entries(replayed)) {
      expect(await redis.hmget(`{${ns}}:s:${key}`, 'v', 's')).toEqual([String(version), String(state)])
    }
    for (const instance of instances) {
      await until(() => instance.cursor === `${instance.epoch}-${entries.length}`)
      expect(storesOf(instance)).toEqual(replayed)
    }
    // The instances raced for real: Redis refused stale commits, and they ran again.
    const conflicts = instances.reduce((sum, instance) => sum + (instance.outcomes.get('conflict') ?? 0), 0)
    expect(conflicts).toBeGreaterThan(0)
  }, 60_000)

  it('refuses write skew: an action stands only while the stores it merely read are unchanged', async () => {
    const ns = namespace()
    const [first, second] = [openInstance(ns), openInstance(ns)] as const
    await Promise.all([first.ready, second.ready])
    const { next } = client()
    const other = client()
    for (let round = 0; round < 20; round++) {
      // Both instances see x = y = 1; each takes one off call, judging by the other flag, at the same time.
      await until(() => first.cursor === second.cursor)
      const [left, right] = await Promise.all([act(first, next('leaveX')), act(second, other.next('leaveY'))])
      const results = [left, right].map((result) => result.type)
      expect(results.sort()).toEqual(['accepted', 'refused'])
      await until(() => second.cursor === first.cursor)
      expect((first.store('x').get() as number) + (first.store('y').get() as number)).toBe(1)
      expect(storesOf(second)).toEqual(storesOf(first))
      expect(await act(first, next('rejoin'))).toMatchObject({ type: 'accepted' })
    }
  }, 60_000)

  it('answers a retry of an action with its original answer, on any instance and after a restart, and applies it once', async () => {
    const ns = namespace()
    const first = openInstance(ns)
    const second = openInstance(ns)
    await Promise.all([first.ready, second.ready])
    const { next } = client()
    const move = next('moveAB')
    const moved = await act(first, move)
    expect(moved).toMatchObject({ type: 'accepted', cursor: `${first.epoch}-1` })
    // At once on the other instance, which may not have followed the Stream yet: the same answer, changes and all.
    expect(await act(second, move)).toEqual(moved)
    expect(await act(first, move)).toEqual(moved)

    // An action that wrote nothing is recorded too: its retry is told the same, and the next op follows.
    const look = next('look')
    const looked = await act(second, look)
    expect(looked).toEqual({ type: 'accepted', changes: [], cursor: `${first.epoch}-1` })
    expect(await act(first, look)).toEqual(looked)
    expect(await act(second, next('moveBA'))).toMatchObject({ type: 'accepted', cursor: `${first.epoch}-2` })

    // A new instance after both are gone: the records and recent events are in Redis.
    const epoch = first.epoch
    for (const instance of [first, second]) {
      await instance.close()
      await instance.storage.close()
    }
    const restarted = openInstance(ns)
    await restarted.ready
    expect(restarted.epoch).toBe(epoch)
    expect(await act(restarted, move)).toEqual(moved)
    expect(await act(restarted, look)).toEqual(looked)
    expect(storesOf(restarted)).toMatchObject({ a: { version: 2, state: 100 }, b: { version: 2, state: 100 } })
    expect(await redisClient().xlen(`{${ns}}:log`)).toBe(2)
  })

  it('keeps one answer with idempotencyWindow 1: the last action is answered as such, an older one as a duplicate, none applied twice', async () => {
    const ns = namespace()
    const first = openInstance(ns, { idempotencyWindow: 1 })
    const second = openInstance(ns, { idempotencyWindow: 1 })
    await Promise.all([first.ready, second.ready])
    const { next } = client()
    const one = next('moveAB')
    const two = next('moveAB')
    const answerOne = await act(first, one)
    const answerTwo = await act(first, two)
    expect(await act(second, two)).toEqual(answerTwo)
    expect(answerOne).toMatchObject({ type: 'accepted', changes: [{ storeKey: 'a', version: 1 }, { storeKey: 'b' }] })
    // Op 1's answer is gone: a duplicate, nothing applied again.
    expect(await act(second, one)).toEqual({ type: 'accepted', changes: [], cursor: undefined, duplicate: true })
    // An action that wrote nothing under window 1, retried at once.
    const three = next('look')
    const answerThree = await act(second, three)
    expect(await act(first, three)).toEqual(answerThree)
    expect(answerThree).toMatchObject({ type: 'accepted', changes: [] })
    expect(await redisClient().xlen(`{${ns}}:log`)).toBe(2)
    await until(() => first.store('a').version === 2 && second.store('a').version === 2)
    expect(storesOf(first)).toMatchObject({ a: { version: 2, state: 98 }, b: { version: 2, state: 102 } })
  })
  it('does not run a resent first action of a client it has no record of, once that record could have expired', async () => {
    const ns = namespace()
    const instance = openInstance(ns, { clientLifetimeMs: 1000 })
    await instance.ready
    const resent = (opId: number, resentAfterMs: number) => ({ action: 'depositA', clientId: newClientId(), opId, epoch: instance.epoch, resentAfterMs })
    // Half the lifetime or more: an earlier attempt may have run and been forgotten since.
    expect(await instance.proposeAction(resent(1, 500), caller)).toMatchObject({ type: 'refused', error: { code: 'unknown_client' } })
    // Less: a record of an earlier attempt would still be here, so there was none.
    expect(await instance.proposeAction(resent(1, 499), caller)).toMatchObject({ type: 'accepted' })
    expect(await redisClient().xlen(`{${ns}}:log`)).toBe(1)
  })
})
