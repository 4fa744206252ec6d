/**
 * Deterministic simulation: real replicas against real authoritative instances over an in-process
 * network that loses answers, duplicates and reorders requests, cuts streams mid-frame, delays
 * everything and restarts servers: on the same storage, onto a fresh one (a new epoch), and one of
 * two instances sharing a storage. A proxy in front of the servers answers some requests with HTML
 * error pages (502/504 instead of forwarding or in place of the server's answer, rarely a 413), the
 * servers' schemas transform what clients send, and one browser runs several tabs that share a
 * stream through an elected leader tab, which closes during the run. A third of the ops are
 * actions (an increment, an append, a move between two stores that must conserve their sum), mixed
 * with sets of the same stores in each client's one queue. A store of 100 id-keyed items merges:
 * replicas toggle, retitle, insert and remove items with updaters that share what they keep, so
 * their proposals go as patches and disjoint ones proposed on a stale base are merged. Server code
 * deletes two stores now and then (and an action deletes one), while replicas keep writing them:
 * ops made before a deletion must be refused, never bring the store back. Each seed replays
 * exactly; a failing one prints its history.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { describe, expect, it } from 'vitest'
import { connect, defineZuno, type ReplicaUniverse, refuseAction, type ServerAction } from '../../src/index'
import { parseEventId } from '../../src/protocol'
import { writerTag } from '../../src/writerTag'
import { type CommittedEvent, createMemoryStorage } from '../../src/server/index'
import {
  applyItemEdit,
  checkAcknowledged,
  checkCounting,
  checkItemEdits,
  checkContiguous,
  checkConverged,
  checkNoResurrection,
  countDeletions,
  deletedAtEnd,
  checkRefusedByProxy,
  checkExactlyOnce,
  checkLinearizable,
  type ItemEdit,
  type OpRecord,
  perStore,
  watchVersions,
} from './checkers'
import { CALM, type Faults, SimNetwork } from './simNetwork'
import { SimBrowser } from './simBrowser'
import { microtaskDigest, seededClientIds, seededRandom, VirtualClock } from './virtualClock'

const SEEDS = [101, 202, 303, 404, 505]
const CLIENTS = 5
const OPS_PER_CLIENT = 420 // with the browser's tabs, 5 seeds × 2,528 = 12,640 ops per scenario
const WORKLOAD_MS = 60_000
const RESTARTS = 2
/** Per deletable store: how many times server code deletes it, and writes it itself (creating it again if it is deleted). */
const SERVER_DELETIONS = 15
const SERVER_WRITES = 5

/** The browser's tabs: how many open at first, how many leaders close and how many tabs open later. */
const FIRST_TABS = 3
const LEADER_CLOSES = 2
const LATER_TABS = 2
/** Ops issued in the browser, each by one of the tabs open at the time. */
const BROWSER_OPS = OPS_PER_CLIENT
/** Ops a leader tab issues just before it closes. */
const CLOSING_BURST = 4
const TOTAL_OPS = CLIENTS * OPS_PER_CLIENT + BROWSER_OPS + LEADER_CLOSES * CLOSING_BURST

const HOSTILE: Faults = {
  minDelayMs: 1,
  maxDelayMs: 40,
  loseResponse: 0.05,
  duplicateRequest: 0.05,
  cutStream: 0.01,
  proxyFailsBefore: 0.02,
  proxyFailsAfter: 0.02,
  proxyTooLarge: 0.003,
}
/** An item of the `items` store: identified by `id`, so edits of two items merge. */
interface Item {
  id: string
  title: string
  done: boolean
}
/** Items enough that an edit of one is a patch much shorter than the list. */
const FIRST_ITEMS = 100
const STORES = {
  counter: 0,
  list: [] as string[],
  value: 0,
  label: '',
  left: 100,
  right: 0,
  items: Array.from({ length: FIRST_ITEMS }, (_, i): Item => ({ id: `i${i}`, title: `item ${i}`, done: false })),
  /** Counts its writes since it was last created: server code and the `drop` action delete it. */
  doc: 0,
}
/** The stores that merge disjoint patches proposed on a stale base, and how their items are identified. */
const MERGING = ['items']
const IDS = { items: { '': 'id' } }
/** What `move` conserves: left + right. */
const TOTAL = 100

/** A store the clients create themselves: after a new epoch it is gone until someone writes it again. */
const DYNAMIC = 'made.by.clients'
const KEYS = [...Object.keys(STORES), DYNAMIC]
/** The stores server code deletes during the run. */
const DELETABLE = ['doc', DYNAMIC]
/** The state a replica shows of a store at version 0, and once it is deleted. */
const initialOf = (key: string): unknown => (key === DYNAMIC ? 0 : STORES[key as keyof typeof STORES])

/** A Standard Schema, written out: accepts what `accepts` allows and stores `transform` of it. */
function transforming<T>(accepts: (input: unknown) => input is T, transform: (input: T) => T): StandardSchemaV1<T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'zuno-simulation',
      validate: (input) => (accepts(input) ? { value: transform(input) } : { issues: [{ message: 'unexpected type' }] }),
    },
  }
}
/**
 * The servers store something other than what clients send: `value` rounded to a multiple of 10,
 * `label` trimmed and upper-cased. A replica that kept what it sent would then differ from the server.
 */
const SCHEMAS = {
  value: transforming((input): input is number => typeof input === 'number', (n) => Math.round(n / 10) * 10),
  label: transforming((input): input is string => typeof input === 'string', (text) => text.trim().toUpperCase()),
}

/**
 * The actions, as the clients know them (they run them optimistically; no schemas on this side, so
 * a replica sends what it computed and the servers' schemas transform it). The servers run the same
 * functions.
 */
const SIM_APP = defineZuno({
  stores: {
    counter: { initial: STORES.counter },
    list: { initial: STORES.list },
    value: { initial: STORES.value },
    label: { initial: STORES.label },
    left: { initial: STORES.left },
    right: { initial: STORES.right },
    items: { initial: STORES.items, ids: IDS.items, merge: true },
    doc: { initial: STORES.doc },
  },
  actions: {
    increment: { run: (tx) => tx.set('counter', (n) => n + 1) },
    append: { args: transforming((input): input is string => typeof input === 'string', (item) => item), run: (tx, item) => tx.set('list', (list) => [...list, item]) },
    /** Moves `amount` from one side to the other (negative: back); refuses to overdraw. */
    move: {
      args: transforming((input): input is number => Number.isInteger(input), (amount) => amount),
      run: (tx, amount) => {
        const from = amount > 0 ? 'left' : 'right'
        if (tx.get(from) < Math.abs(amount)) refuseAction(`${from} holds less than ${Math.abs(amount)}`)
        tx.set('left', (n) => n - amount)
        tx.set('right', (n) => n + amount)
      },
    },
    drop: { run: (tx) => tx.delete('doc') },
  },
})
const SERVER_ACTIONS: Record<string, ServerAction> = Object.fromEntries(
  Object.entries(SIM_APP.actions).map(([name, spec]) => [name, spec.run as unknown as ServerAction]),
)

interface Run {
  network: SimNetwork
  browser: SimBrowser
  /** Every replica by name: `c0`…, and the browser's tabs `t0`…, open or closed. */
  replicas: Map<string, ReplicaUniverse>
  /** The tabs closed during the run (each was the leader when it closed). */
  closedTabs: Set<string>
  /** How many times a tab became the leader. */
  leaderships: number
  ops: OpRecord[]
  /** Each replica's writer tags, by replica name. */
  writers: Map<string, Set<string>>
  /** What the replicas showed that no checker of the end state could see (a version going back). */
  shown: string[]
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
      schemas: SCHEMAS,
      actions: SERVER_ACTIONS,
      ids: IDS,
      merge: MERGING,
      retention: scenario.retention,
      instances: scenario.instances,
    },
    HOSTILE,
  )
  const browser = new SimBrowser(clock, () => network.latency())
  const replicas = new Map<string, ReplicaUniverse>()
  const ops: OpRecord[] = []
  const writers = new Map<string, Set<string>>()
  const shown: string[] = []
  let replicaSeed = 0
  /** The epoch a replica is in, as far as its stream has told it. */
  const epochOf = (replica: ReplicaUniverse) => (replica.lastEventId === undefined ? undefined : parseEventId(replica.lastEventId)?.epoch)
  /** A store as the replicas write it: the clients' own store starts at 0. */
  const storeOf = (replica: ReplicaUniverse, key: string) => (key === DYNAMIC ? replica.store<number>(DYNAMIC, 0) : replica.store(key))
  const open = (name: string, tab: boolean): ReplicaUniverse => {
    const replicaIndex = replicaSeed++
    const replica = connect({
      app: SIM_APP,
      url: 'http://sim.invalid/zuno',
      fetch: network.fetchFor(),
      EventSource: network.EventSource,
      timers: clock,
      // Jitter, the clock and client ids all come from the seed, so a run replays exactly.
      random: seededRandom(seed * 31 + replicaIndex),
      now: () => clock.now,
      newId: seededClientIds(seededRandom(seed * 37 + replicaIndex + 1_000_003)),
      subtle: microtaskDigest,
      maxAttempts: 100,
      maxPendingOps: 1_000_000,
      // Tabs of one browser: same URL, same (absent) store filter, so one channel and one leader.
      ...(tab ? { tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name) } : { tabs: false }),
    }) as unknown as ReplicaUniverse
    replicas.set(name, replica)
    writers.set(name, new Set([writerTag(replica.clientId)]))
    watchVersions(name, { store: (key) => storeOf(replica, key) }, KEYS, () => epochOf(replica), (problem) => shown.push(`t=${clock.now} ${problem}`))
    return replica
  }

  let issued = 0
  /** One `set` by the replica `name`, on a store picked at random, recorded as its caller sees it. */
  const issue = (name: string, replica: ReplicaUniverse) => {
    const tags = writers.get(name) as Set<string>
    // A replica takes a fresh identity when the server has forgotten it: note every tag it writes under.
    const noteTag = () => tags.add(writerTag(replica.clientId))
    /** Records how a `set` settled, as its caller sees it. */
    const settleInto = (record: OpRecord, promise: Promise<number>) =>
      promise.then(
        (version) => {
          noteTag()
          Object.assign(record, { outcome: 'resolved', version })
        },
        (error: { code?: string; cause?: { code?: string } }) => {
          noteTag()
          Object.assign(record, { outcome: 'rejected', error: error.code, cause: error.cause?.code })
        },
      )
    const item = `${name}:${++issued}`
    if (random() < 1 / 3) {
      const pick = random()
      const action = pick < 0.4 ? 'increment' : pick < 0.68 ? 'append' : pick < 0.96 ? 'move' : 'drop'
      const storeKey = action === 'increment' ? 'counter' : action === 'append' ? 'list' : action === 'move' ? 'left' : 'doc'
      const record: OpRecord = { replica: name, storeKey, action, outcome: 'pending' }
      ops.push(record)
      const args = action === 'append' ? item : action === 'move' ? (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 5)) : undefined
      replica.act(action, args).then(
        () => {
          noteTag()
          record.outcome = 'resolved'
        },
        (error: { code?: string; cause?: { code?: string } }) => {
          noteTag()
          Object.assign(record, { outcome: 'rejected', error: error.code, cause: error.cause?.code })
        },
      )
      return
    }
    if (random() < 0.3) {
      // An edit of one item of the merging store, picked from what this replica shows now.
      const items = replica.store<Item[]>('items').get()
      const pick = random()
      // Half the edits go to the first few items: edits of one item then meet on stale bases, and must conflict.
      const target = items[Math.floor(random() * (random() < 0.5 ? Math.min(4, items.length) : items.length))]?.id
      const edit: ItemEdit =
        target === undefined || pick < 0.2
          ? { kind: 'insert', id: item, after: target ?? null }
          : pick < 0.55
            ? { kind: 'toggle', id: target }
            : pick < 0.8
              ? { kind: 'rename', id: target, title: item }
              : { kind: 'remove', id: target }
      const record: OpRecord = { replica: name, storeKey: 'items', edit, outcome: 'pending' }
      ops.push(record)
      settleInto(record, replica.store<Item[]>('items').set((list) => applyItemEdit(list, edit) as Item[]))
      return
    }
    const pick = random()
    const storeKey = pick < 0.35 ? 'counter' : pick < 0.55 ? 'list' : pick < 0.68 ? 'value' : pick < 0.78 ? 'label' : pick < 0.89 ? DYNAMIC : 'doc'
    const record: OpRecord = { replica: name, storeKey, outcome: 'pending' }
    const epoch = epochOf(replica)
    // Where the op was made: a deletion after that version and before its own must refuse it.
    if (epoch !== undefined) record.madeOn = { version: storeOf(replica, storeKey).version, epoch }
    ops.push(record)
    const promise =
      storeKey === 'counter'
        ? replica.store<number>('counter').set((n) => n + 1)
        : storeKey === 'list'
          ? replica.store<string[]>('list').set((list) => [...list, item])
          : storeKey === 'value'
            ? replica.store<number>('value').set(Math.floor(random() * 1000))
            : storeKey === 'label'
              ? replica.store<string>('label').set(`  set by ${item} `)
              : storeKey === 'doc'
                ? replica.store<number>('doc').set((n) => n + 1)
                : replica.store<number>(DYNAMIC, 0).set((n) => (n ?? 0) + 1)
    settleInto(record, promise)
  }

  for (let i = 0; i < CLIENTS; i++) {
    const name = `c${i}`
    const replica = open(name, false)
    for (let k = 0; k < OPS_PER_CLIENT; k++) clock.setTimeout(() => issue(name, replica), random() * WORKLOAD_MS)
  }

  // The browser: tabs open and close during the run; each op goes to a tab open at the time.
  let tabCount = 0
  const openTabs: string[] = []
  const closedTabs = new Set<string>()
  const openTab = () => {
    const name = `t${tabCount++}`
    open(name, true)
    openTabs.push(name)
  }
  for (let t = 0; t < FIRST_TABS; t++) openTab()
  for (let k = 0; k < BROWSER_OPS; k++) {
    clock.setTimeout(() => {
      const name = openTabs[Math.floor(random() * openTabs.length)] as string
      issue(name, replicas.get(name) as ReplicaUniverse)
    }, random() * WORKLOAD_MS)
  }
  let leadersClosed = 0
  /** Closes the tab that leads; while leadership is changing hands there is none, so it looks again later. */
  const closeLeader = () => {
    const [lock] = browser.heldLocks()
    const leader = lock === undefined ? undefined : browser.holder(lock)
    if (leader === undefined || openTabs.length < 2) {
      clock.setTimeout(closeLeader, 50)
      return
    }
    openTabs.splice(openTabs.indexOf(leader), 1)
    closedTabs.add(leader)
    // The user was busy in that tab: it closes with ops queued, one of them perhaps on the wire.
    const tab = replicas.get(leader) as ReplicaUniverse
    for (let k = 0; k < CLOSING_BURST; k++) issue(leader, tab)
    clock.setTimeout(() => {
      leadersClosed += 1
      tab.close()
    }, random() * 60)
  }
  for (let c = 0; c < LEADER_CLOSES; c++) clock.setTimeout(closeLeader, random() * WORKLOAD_MS)
  for (let t = 0; t < LATER_TABS; t++) clock.setTimeout(openTab, random() * WORKLOAD_MS)

  // Server code deletes the deletable stores now and then, and writes them (creating a deleted one again).
  const asServer = (write: (universe: SimNetwork['universe']) => Promise<unknown>) => {
    let universe: SimNetwork['universe']
    try {
      universe = network.universe
    } catch {
      return // every instance is down: server code has nothing to call
    }
    write(universe).catch(() => {})
  }
  for (const key of DELETABLE) {
    for (let d = 0; d < SERVER_DELETIONS; d++) clock.setTimeout(() => asServer((universe) => universe.delete(key)), random() * WORKLOAD_MS)
    for (let w = 0; w < SERVER_WRITES; w++) {
      clock.setTimeout(() => asServer((universe) => universe.store<number>(key).set((n) => (n ?? 0) + 1)), random() * WORKLOAD_MS)
    }
  }

  for (let r = 0; r < RESTARTS; r++) {
    const fresh = r < scenario.freshRestarts
    clock.setTimeout(() => network.restart(100 + random() * 900, { fresh }), random() * WORKLOAD_MS)
  }

  await clock.run(
    () => clock.now > WORKLOAD_MS && leadersClosed === LEADER_CLOSES && ops.length === TOTAL_OPS && ops.every((op) => op.outcome !== 'pending'),
  )
  // Quiescence: the network calms down and everything in flight lands.
  network.faults = CALM
  await clock.run()
  return { network, browser, replicas, closedTabs, leaderships: browser.grants, ops, writers, shown }
}

function describeRun(seed: number, run: Run, problems: string[]): string {
  const lines = [`seed ${seed}: ${problems.length} problem(s)`, ...problems.slice(0, 20), '', 'history (last 60 commits):']
  for (const event of run.network.committed.slice(-60)) {
    lines.push(`  #${event.seq} ${event.storeKey} v${event.version} by ${event.writer}#${event.opId} = ${event.deleted ? '(deleted)' : JSON.stringify(event.state)?.slice(0, 60)}`)
  }
  lines.push('attempts (last 60):')
  for (const attempt of run.network.attempts.slice(-60)) {
    lines.push(
      `  t=${attempt.invokedAt}→${attempt.respondedAt ?? 'lost'} ${attempt.clientId}#${attempt.opId} ${attempt.storeKey} base ${attempt.baseVersion} → ${attempt.status ?? '-'}${attempt.proxy ? ` (proxy, ${attempt.proxy})` : ''} ${attempt.answer ? `v${attempt.answer.version}` : ''}`,
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
    it(`seed ${seed}: ${CLIENTS} replicas and a browser's tabs, ${TOTAL_OPS} ops, no write lost, all converge`, async () => {
      const run = await simulate(seed, scenario)
      const { network, replicas, closedTabs, ops, writers } = run
      const epochs = byEpoch(network.committed)
      const problems = checkAcknowledged(ops, epochs, writers, scenario.freshRestarts)
      problems.push(...checkRefusedByProxy(ops, network.attempts, writers))
      // No op made before a deletion brought the store back; no replica showed a version going back.
      problems.push(...checkNoResurrection(ops, epochs, writers), ...run.shown)
      const clientTags = new Set([...writers.values()].flatMap((tags) => [...tags]))
      // Every acknowledged item edit, merged or not, made its version from the one before it.
      problems.push(...checkItemEdits(ops, epochs, writers, STORES.items))
      for (const [epoch, committed] of epochs) {
        const attempts = network.attempts.filter((attempt) => attempt.epoch === epoch)
        problems.push(
          ...checkContiguous(committed),
          ...checkExactlyOnce(committed),
          ...checkLinearizable(attempts, committed, STORES, new Set(MERGING), (writer) => !clientTags.has(writer)),
        )
        // Rebase correctness: every accepted op was computed on the state it was accepted on.
        const history = (key: string) => perStore(committed).filter((event) => event.storeKey === key)
        // Counting stores: one more per write, from the initial state after a deletion.
        for (const key of ['counter', DYNAMIC, 'doc']) problems.push(...checkCounting(committed, key, 0))
        history('list').forEach((event, index, all) => {
          const before = index === 0 ? [] : (all[index - 1]?.state as string[])
          const list = event.state as string[]
          if (list.length !== before.length + 1 || list.slice(0, -1).join() !== before.join()) {
            problems.push(`list v${event.version} is not v${event.version - 1} plus one item`)
          }
        })
        // The schemas transformed every write.
        for (const event of history('value')) if ((event.state as number) % 10 !== 0) problems.push(`value v${event.version} holds ${event.state}`)
        // Serializable moves: every commit that touched either side touched both, as one event, and conserved the sum.
        for (const event of committed) {
          const changes = event.changes ?? [event]
          const sides = changes.filter((change) => change.storeKey === 'left' || change.storeKey === 'right')
          if (sides.length === 0) continue
          const left = sides.find((change) => change.storeKey === 'left')?.state as number | undefined
          const right = sides.find((change) => change.storeKey === 'right')?.state as number | undefined
          if (sides.length !== 2 || left === undefined || right === undefined || left + right !== TOTAL || left < 0 || right < 0) {
            problems.push(`#${event.seq} moved ${JSON.stringify(sides)}: not one change of both sides summing to ${TOTAL}`)
          }
        }
        for (const event of history('label')) {
          const label = event.state as string
          if (label !== label.trim().toUpperCase()) problems.push(`label v${event.version} holds ${JSON.stringify(label)}`)
        }
      }
      expect(epochs.size).toBe(1 + scenario.freshRestarts)

      // Convergence: after quiescence every replica and every open tab shows the server's version and state.
      const open = new Map([...replicas].filter(([name]) => !closedTabs.has(name)))
      const deleted = deletedAtEnd([...epochs.values()].at(-1) ?? [])
      problems.push(...checkConverged((key) => network.universe.store(key), open, KEYS, { has: (key) => deleted.has(key), initial: initialOf }))

      // Deletions happened, stores were created again, and ops made before a deletion were refused.
      const { deletions, recreations } = [...epochs.values()].map(countDeletions).reduce((a, b) => ({ deletions: a.deletions + b.deletions, recreations: a.recreations + b.recreations }))
      const storeDeleted = ops.filter((op) => op.error === 'store_deleted').length
      expect({ deletions: deletions > 0, recreations: recreations > 0, storeDeleted: storeDeleted > 0 }).toEqual({ deletions: true, recreations: true, storeDeleted: true })

      // The faults really happened.
      const { lostAnswers, duplicates, cuts, restarts, freshStorages, htmlBefore, htmlAfter, html413 } = network.injected
      expect({ restarts, freshStorages }).toEqual({ restarts: RESTARTS, freshStorages: scenario.freshRestarts })
      for (const count of [lostAnswers, duplicates, cuts, htmlBefore, htmlAfter]) expect(count).toBeGreaterThan(10)
      expect(html413).toBeGreaterThan(0)
      // The paths the scenario is about were taken: forgotten clients, new epochs.
      if (scenario.clientLifetimeMs < DAY) expect(network.errors.get('unknown_client')).toBeGreaterThan(0)
      if (scenario.freshRestarts > 0) expect(network.errors.get('epoch_changed') ?? 0).toBeGreaterThanOrEqual(0)
      // Leaders closed and others took over: a first leader, then one more per close.
      expect(closedTabs.size).toBe(LEADER_CLOSES)
      expect(run.leaderships).toBeGreaterThanOrEqual(1 + LEADER_CLOSES)
      expect(open.size).toBe(CLIENTS + FIRST_TABS - LEADER_CLOSES + LATER_TABS)
      // What the closing tabs had queued rejected as the client documents (no outbox: `closed`).
      expect(ops.filter((op) => op.error === 'closed').length).toBeGreaterThan(0)
      // The schemas changed what was sent: some op's state on the wire is not what the server stored.
      expect(network.attempts.some((attempt) => attempt.storeKey === 'label' && attempt.answer && attempt.answer.state !== attempt.state)).toBe(true)
      if (process.env.ZUNO_SIM_DEBUG) {
        const rejected = new Map<string, number>()
        for (const op of ops) if (op.error !== undefined) rejected.set(op.error, (rejected.get(op.error) ?? 0) + 1)
        console.log(scenario.name, seed, Object.fromEntries(network.errors), network.injected, network.deltas, Object.fromEntries(rejected), run.leaderships, { deletions, recreations, storeDeleted })
      }
      // Deltas really travelled, both ways, and the merging store merged.
      const { patchProposals, patchFrames, patchAnswers, merges } = network.deltas
      for (const count of [patchProposals, patchFrames, patchAnswers, merges]) expect(count).toBeGreaterThan(0)
      expect(ops.filter((op) => op.outcome === 'resolved').length).toBeGreaterThan(ops.length * 0.9)

      if (problems.length > 0) console.error(describeRun(seed, run, problems))
      expect(problems).toEqual([])
      for (const replica of replicas.values()) replica.close()
    })
  }

  it('replays a seed exactly', async () => {
    // With seeded client ids, the same writers too.
    // Server code writes under a random identity of its own: named as the server.
    const summary = (run: Run) => {
      const clientTags = new Set([...run.writers.values()].flatMap((tags) => [...tags]))
      return run.network.committed.map((e) => `${e.storeKey}@${e.version}${e.deleted ? '(deleted)' : ''}:${clientTags.has(e.writer) ? e.writer : 'server'}#${e.opId}`)
    }
    const first = await simulate(SEEDS[0] as number, scenario)
    const second = await simulate(SEEDS[0] as number, scenario)
    expect(summary(second)).toEqual(summary(first))
    for (const replica of [...first.replicas.values(), ...second.replicas.values()]) replica.close()
  })
})
