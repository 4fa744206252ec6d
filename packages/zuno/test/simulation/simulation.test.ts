/**
 * Deterministic simulation: real replicas against a real authoritative universe over an in-process
 * network that loses answers, duplicates and reorders requests, cuts streams mid-frame, delays
 * everything and restarts the server. Each seed replays exactly; a failing one prints its history.
 */
import { describe, expect, it } from 'vitest'
import { connect, type ReplicaUniverse } from '../../src/index'
import { writerTag } from '../../src/protocol'
import { createMemoryStorage } from '../../src/server/index'
import {
  checkAcknowledged,
  checkContiguous,
  checkExactlyOnce,
  checkLinearizable,
  type OpRecord,
} from './checkers'
import { CALM, type Faults, SimNetwork } from './simNetwork'
import { seededRandom, VirtualClock } from './virtualClock'

const SEEDS = [101, 202, 303, 404, 505]
const CLIENTS = 5
const OPS_PER_CLIENT = 420 // 5 seeds × 5 clients × 420 = 10,500 ops per run
const WORKLOAD_MS = 60_000
const RESTARTS = 2

const HOSTILE: Faults = { minDelayMs: 1, maxDelayMs: 40, loseResponse: 0.05, duplicateRequest: 0.05, cutStream: 0.01 }
const STORES = { counter: 0, list: [] as string[], value: 0 }

interface Run {
  network: SimNetwork
  replicas: ReplicaUniverse[]
  ops: OpRecord[]
  /** Each replica's writer tags, by replica name. */
  writers: Map<string, Set<string>>
}

/** How much the server remembers: roomy, and every bound at its smallest. */
interface Bounds {
  name: string
  idempotencyWindow: number
  retention: number
}
const ROOMY: Bounds = { name: 'roomy bounds', idempotencyWindow: 1_000_000, retention: 50 }
const SMALLEST: Bounds = { name: 'smallest bounds', idempotencyWindow: 1, retention: 1 }

async function simulate(seed: number, bounds: Bounds = ROOMY): Promise<Run> {
  const random = seededRandom(seed)
  const clock = new VirtualClock()
  const storage = createMemoryStorage({ idempotencyWindow: bounds.idempotencyWindow })
  const network = new SimNetwork(clock, random, storage, STORES, HOSTILE, bounds.retention)
  const replicas = Array.from({ length: CLIENTS }, (_, i) =>
    connect({
      url: 'http://sim.invalid/zuno',
      fetch: network.fetchFor(),
      EventSource: network.EventSource,
      timers: clock,
      random: seededRandom(seed * 31 + i),
      maxAttempts: 100,
      maxPendingOps: 1_000_000,
    }),
  )
  const ops: OpRecord[] = []
  const writers = new Map<string, Set<string>>()
  replicas.forEach((replica, i) => {
    const tags = new Set([writerTag(replica.clientId)])
    writers.set(`c${i}`, tags)
    // A replica takes a fresh identity when the server has forgotten it: note every tag it writes under.
    const noteTag = () => tags.add(writerTag(replica.clientId))
    let issued = 0
    for (let k = 0; k < OPS_PER_CLIENT; k++) {
      clock.setTimeout(() => {
        const pick = random()
        const storeKey = pick < 0.5 ? 'counter' : pick < 0.8 ? 'list' : 'value'
        const record: OpRecord = { replica: `c${i}`, storeKey, outcome: 'pending' }
        const item = `c${i}:${++issued}`
        ops.push(record)
        const promise =
          storeKey === 'counter'
            ? replica.store<number>('counter').set((n) => n + 1)
            : storeKey === 'list'
              ? replica.store<string[]>('list').set((list) => [...list, item])
              : replica.store<number>('value').set(Math.floor(random() * 1000))
        promise.then(
          (version) => {
            noteTag()
            Object.assign(record, { outcome: 'resolved', version })
          },
          (error: { code?: string }) => {
            noteTag()
            Object.assign(record, { outcome: 'rejected', error: error.code })
          },
        )
      }, random() * WORKLOAD_MS)
    }
  })
  for (let r = 0; r < RESTARTS; r++) {
    clock.setTimeout(() => network.restart(100 + random() * 900), random() * WORKLOAD_MS)
  }

  await clock.run(() => clock.now > WORKLOAD_MS && ops.length === CLIENTS * OPS_PER_CLIENT && ops.every((op) => op.outcome !== 'pending'))
  // Quiescence: the network calms down and everything in flight lands.
  network.faults = CALM
  await clock.run()
  return { network, replicas, ops, writers }
}

function describeRun(seed: number, run: Run, problems: string[]): string {
  const lines = [`seed ${seed}: ${problems.length} problem(s)`, ...problems.slice(0, 20), '', 'history (last 60 commits):']
  for (const event of run.network.committed.slice(-60)) {
    lines.push(`  #${event.seq} ${event.storeKey} v${event.version} by ${event.writer}#${event.opId} = ${JSON.stringify(event.state).slice(0, 60)}`)
  }
  lines.push('attempts (last 60):')
  for (const attempt of run.network.attempts.slice(-60)) {
    lines.push(
      `  t=${attempt.invokedAt}→${attempt.respondedAt ?? 'lost'} ${attempt.clientId}#${attempt.opId} ${attempt.storeKey} base ${attempt.baseVersion} → ${attempt.status ?? '-'} ${attempt.answer ? `v${attempt.answer.version}` : ''}`,
    )
  }
  return lines.join('\n')
}

describe.each([ROOMY, SMALLEST])('simulation under injected faults, $name', (bounds) => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: ${CLIENTS} replicas, ${CLIENTS * OPS_PER_CLIENT} ops, no write lost, all converge`, async () => {
      const run = await simulate(seed, bounds)
      const { network, replicas, ops, writers } = run
      const committed = network.committed
      const problems = [
        ...checkContiguous(committed),
        ...checkExactlyOnce(committed),
        ...checkAcknowledged(ops, committed, writers),
        ...checkLinearizable(network.attempts, committed, STORES),
      ]

      // Rebase correctness: every accepted op was computed on the state it was accepted on.
      const history = (key: string) => committed.filter((event) => event.storeKey === key)
      history('counter').forEach((event) => {
        if (event.state !== event.version) problems.push(`counter v${event.version} holds ${event.state}`)
      })
      history('list').forEach((event, index, all) => {
        const before = index === 0 ? [] : (all[index - 1]?.state as string[])
        const list = event.state as string[]
        if (list.length !== before.length + 1 || list.slice(0, -1).join() !== before.join()) {
          problems.push(`list v${event.version} is not v${event.version - 1} plus one item`)
        }
      })

      // Convergence: after quiescence every replica shows exactly the server's version and state.
      for (const [key] of Object.entries(STORES)) {
        const server = network.universe.store(key)
        for (const replica of replicas) {
          const store = replica.store(key)
          if (store.version !== server.version || JSON.stringify(store.get()) !== JSON.stringify(server.get())) {
            problems.push(`${writerTag(replica.clientId)} shows ${key} v${store.version}, the server v${server.version}`)
          }
          if (replica.pending.get() !== 0) problems.push(`${writerTag(replica.clientId)} still has ${replica.pending.get()} pending ops`)
        }
      }

      // The faults really happened.
      const { lostAnswers, duplicates, cuts, restarts } = network.injected
      expect({ lostAnswers, duplicates, cuts, restarts }).toEqual({
        lostAnswers: expect.any(Number),
        duplicates: expect.any(Number),
        cuts: expect.any(Number),
        restarts: RESTARTS,
      })
      for (const count of [lostAnswers, duplicates, cuts]) expect(count).toBeGreaterThan(10)
      expect(ops.filter((op) => op.outcome === 'resolved').length).toBeGreaterThan(ops.length * 0.9)

      if (problems.length > 0) console.error(describeRun(seed, run, problems))
      expect(problems).toEqual([])
      for (const replica of replicas) replica.close()
    })
  }

  it('replays a seed exactly', async () => {
    const summary = (run: Run) => run.network.committed.map((e) => `${e.storeKey}@${e.version}:${e.opId}`)
    const first = await simulate(SEEDS[0] as number)
    const second = await simulate(SEEDS[0] as number)
    expect(summary(second)).toEqual(summary(first))
    for (const replica of [...first.replicas, ...second.replicas]) replica.close()
  })
})
