/**
 * Deterministic simulation: real replicas against real authoritative instances over an in-process
 * network that loses answers, duplicates and reorders requests, cuts streams mid-frame, delays
 * everything and restarts servers: on the same storage, onto a fresh one (a new epoch), and one of
 * two instances sharing a storage. Each seed replays exactly; a failing one prints its history.
 */
import { describe, expect, it } from 'vitest'
import { connect, type ReplicaUniverse } from '../../src/index'
import { parseEventId, writerTag } from '../../src/protocol'
import { type CommittedEvent, createMemoryStorage } from '../../src/server/index'
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
const OPS_PER_CLIENT = 420 // 5 seeds × 5 clients × 420 = 10,500 ops per scenario
const WORKLOAD_MS = 60_000
const RESTARTS = 2

const HOSTILE: Faults = { minDelayMs: 1, maxDelayMs: 40, loseResponse: 0.05, duplicateRequest: 0.05, cutStream: 0.01 }
const STORES = { counter: 0, list: [] as string[], value: 0 }
/** A store the clients create themselves: after a new epoch it is gone until someone writes it again. */
const DYNAMIC = 'made.by.clients'
const KEYS = [...Object.keys(STORES), DYNAMIC]

interface Run {
  network: SimNetwork
  replicas: ReplicaUniverse[]
  ops: OpRecord[]
  /** Each replica's writer tags, by replica name. */
  writers: Map<string, Set<string>>
}

/** What the servers remember and how they fail. */
interface Scenario {
  name: string
  idempotencyWindow: number
  /** How long a silent client is remembered, in virtual ms. */
  clientLifetimeMs: number
  retention: number
  /** Instances sharing the storage. */
  instances: number
  /** How many of the restarts are onto a fresh, empty storage (a new epoch). */
  freshRestarts: number
}
const DAY = 86_400_000
const ROOMY: Scenario = { name: 'roomy bounds', idempotencyWindow: 1_000_000, clientLifetimeMs: DAY, retention: 50, instances: 1, freshRestarts: 0 }
/** Clients silent for 400 ms are forgotten: the ops they then had in doubt reject as `outcome_unknown`. */
const SMALLEST: Scenario = { name: 'smallest bounds', idempotencyWindow: 1, clientLifetimeMs: 400, retention: 1, instances: 1, freshRestarts: 0 }
const NEW_EPOCHS: Scenario = { ...SMALLEST, name: 'smallest bounds, restarts onto fresh storage', clientLifetimeMs: DAY, freshRestarts: RESTARTS }
const TWO_INSTANCES: Scenario = { ...SMALLEST, name: 'smallest bounds, two instances on one storage', instances: 2 }

async function simulate(seed: number, scenario: Scenario): Promise<Run> {
  const random = seededRandom(seed)
  const clock = new VirtualClock()
  const network = new SimNetwork(
    clock,
    random,
    {
      storage: () =>
        createMemoryStorage({ idempotencyWindow: scenario.idempotencyWindow, clientLifetimeMs: scenario.clientLifetimeMs, now: () => clock.now }),
      stores: STORES,
      allowStore: (key) => key === DYNAMIC,
      retention: scenario.retention,
      instances: scenario.instances,
    },
    HOSTILE,
  )
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
        const storeKey = pick < 0.45 ? 'counter' : pick < 0.75 ? 'list' : pick < 0.9 ? 'value' : DYNAMIC
        const record: OpRecord = { replica: `c${i}`, storeKey, outcome: 'pending' }
        const item = `c${i}:${++issued}`
        ops.push(record)
        const promise =
          storeKey === 'counter'
            ? replica.store<number>('counter').set((n) => n + 1)
            : storeKey === 'list'
              ? replica.store<string[]>('list').set((list) => [...list, item])
              : storeKey === 'value'
                ? replica.store<number>('value').set(Math.floor(random() * 1000))
                : replica.store<number>(DYNAMIC, 0).set((n) => (n ?? 0) + 1)
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
    const fresh = r < scenario.freshRestarts
    clock.setTimeout(() => network.restart(100 + random() * 900, { fresh }), random() * WORKLOAD_MS)
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

/** The history split by epoch, in order: each epoch is a history of its own. */
function byEpoch(committed: readonly CommittedEvent[]): Map<string, CommittedEvent[]> {
  const epochs = new Map<string, CommittedEvent[]>()
  for (const event of committed) {
    const epoch = parseEventId(event.id)?.epoch ?? ''
    const list = epochs.get(epoch) ?? []
    list.push(event)
    epochs.set(epoch, list)
  }
  return epochs
}

describe.each([ROOMY, SMALLEST, NEW_EPOCHS, TWO_INSTANCES])('simulation under injected faults, $name', (scenario) => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: ${CLIENTS} replicas, ${CLIENTS * OPS_PER_CLIENT} ops, no write lost, all converge`, async () => {
      const run = await simulate(seed, scenario)
      const { network, replicas, ops, writers } = run
      const epochs = byEpoch(network.committed)
      const problems = checkAcknowledged(ops, epochs, writers, scenario.freshRestarts)
      for (const [epoch, committed] of epochs) {
        const attempts = network.attempts.filter((attempt) => attempt.epoch === epoch)
        problems.push(
          ...checkContiguous(committed),
          ...checkExactlyOnce(committed),
          ...checkLinearizable(attempts, committed, STORES),
        )
        // Rebase correctness: every accepted op was computed on the state it was accepted on.
        const history = (key: string) => committed.filter((event) => event.storeKey === key)
        for (const key of ['counter', DYNAMIC]) {
          history(key).forEach((event) => {
            if (event.state !== event.version) problems.push(`${key} v${event.version} holds ${event.state}`)
          })
        }
        history('list').forEach((event, index, all) => {
          const before = index === 0 ? [] : (all[index - 1]?.state as string[])
          const list = event.state as string[]
          if (list.length !== before.length + 1 || list.slice(0, -1).join() !== before.join()) {
            problems.push(`list v${event.version} is not v${event.version - 1} plus one item`)
          }
        })
      }
      expect(epochs.size).toBe(1 + scenario.freshRestarts)

      // Convergence: after quiescence every replica shows exactly the server's version and state.
      for (const key of KEYS) {
        const server = network.universe.store(key)
        for (const replica of replicas) {
          const store = replica.store(key)
          const sameState = server.version === 0 || JSON.stringify(store.get()) === JSON.stringify(server.get())
          if (store.version !== server.version || !sameState) {
            problems.push(`${writerTag(replica.clientId)} shows ${key} v${store.version}, the server v${server.version}`)
          }
        }
      }
      for (const replica of replicas) {
        if (replica.pending.get() !== 0) problems.push(`${writerTag(replica.clientId)} still has ${replica.pending.get()} pending ops`)
      }

      // The faults really happened.
      const { lostAnswers, duplicates, cuts, restarts, freshStorages } = network.injected
      expect({ restarts, freshStorages }).toEqual({ restarts: RESTARTS, freshStorages: scenario.freshRestarts })
      for (const count of [lostAnswers, duplicates, cuts]) expect(count).toBeGreaterThan(10)
      // The paths the scenario is about were taken: forgotten clients, new epochs.
      if (scenario.clientLifetimeMs < DAY) expect(network.errors.get('unknown_client')).toBeGreaterThan(0)
      if (scenario.freshRestarts > 0) expect(network.errors.get('epoch_changed') ?? 0).toBeGreaterThanOrEqual(0)
      if (process.env.ZUNO_SIM_DEBUG) console.log(scenario.name, seed, Object.fromEntries(network.errors), ops.filter((op) => op.error === 'outcome_unknown').length)
      expect(ops.filter((op) => op.outcome === 'resolved').length).toBeGreaterThan(ops.length * 0.9)

      if (problems.length > 0) console.error(describeRun(seed, run, problems))
      expect(problems).toEqual([])
      for (const replica of replicas) replica.close()
    })
  }

  it('replays a seed exactly', async () => {
    const summary = (run: Run) => run.network.committed.map((e) => `${e.storeKey}@${e.version}:${e.opId}`)
    const first = await simulate(SEEDS[0] as number, scenario)
    const second = await simulate(SEEDS[0] as number, scenario)
    expect(summary(second)).toEqual(summary(first))
    for (const replica of [...first.replicas, ...second.replicas]) replica.close()
  })
})
