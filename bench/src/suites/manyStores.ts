/**
 * Many stores (issue #17): a storage holding a million documents against an empty one. A server
 * on a storage read lazily must start within 2 × the time of an empty one, and its memory must
 * follow the stores it holds (`hotStores`), not those that exist. Then 10,000 subscribers each
 * following 3 random documents: p99 from a write to its last follower, against the same
 * subscribers all on one store.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Child, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Comparison, type Suite, type SuiteResult } from '../harness/results'
import { median, percentile, round } from '../harness/stats'
import type { StorageKind } from '../servers/manyStoresStorage'

/** The storages measured: each read lazily has the targets; the JSONL file log is shown for contrast. */
const KINDS: ReadonlyArray<{ kind: StorageKind; name: string; lazy: boolean }> = [
  { kind: 'redis', name: 'Redis', lazy: true },
  { kind: 'sqlite', name: 'SQLite', lazy: true },
  { kind: 'file', name: 'file log (JSONL)', lazy: false },
]
const HOT_STORES = 10_000

interface Where {
  dir?: string
  namespace?: string
}

interface Started {
  startMs: number
  processMs: number
  rss: number
  /** RSS after each of three rounds of reading 3 × hotStores random documents: memory must level off. */
  rssTouched: [number, number, number]
}

export const manyStores: Suite = {
  id: 'manyStores',
  title: 'Many stores',
  steps: (config) => KINDS.length * (2 + 2 * config.reps) + 2,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const size = config.quick ? 100_000 : 1_000_000
    const subscribers = config.quick ? 2_000 : 10_000
    const comparisons: Comparison[] = []
    const figures: Record<string, unknown> = {}
    const notes: string[] = []
    const cleanups: Array<() => void> = []
    try {
      let fanoutOn: { kind: StorageKind; where: Where } | undefined
      for (const { kind, name, lazy } of KINDS) {
        const empty = makeWhere(kind, cleanups)
        const full = makeWhere(kind, cleanups)
        progress.step(`many stores, ${name}: writing ${size.toLocaleString('en-US')} documents`)
        const filledMs = await fill(kind, full, size)
        progress.detail(`${round(filledMs / 1000)} s`)
        progress.step(`many stores, ${name}: an empty storage once, to warm up`)
        await startOnce(kind, empty, size)
        const runs = { empty: [] as Started[], full: [] as Started[] }
        for (let rep = 1; rep <= config.reps; rep++) {
          for (const [label, where] of [['empty', empty], ['full', full]] as const) {
            progress.step(`many stores, ${name}: starting on the ${label} storage, run ${rep}/${config.reps}`)
            const started = await startOnce(kind, where, size)
            runs[label].push(started)
            progress.detail(`start ${round(started.startMs)} ms, RSS ${mib(started.rss)} MiB, after reading documents ${started.rssTouched.map(mib).join(' → ')} MiB`)
          }
        }
        const pick = (label: 'empty' | 'full', of: (run: Started) => number) => runs[label].map(of)
        const target = lazy ? { op: '<=' as const, value: 2 } : undefined
        comparisons.push(
          compare(`Many stores, ${name}: start with ${size.toLocaleString('en-US')} stores`, 'ms', pick('full', (run) => run.startMs), 'an empty storage', pick('empty', (run) => run.startMs), target),
          compare(`Many stores, ${name}: RSS once started`, 'MiB', pick('full', (run) => mib(run.rss)), 'an empty storage', pick('empty', (run) => mib(run.rss)), lazy ? { op: '<=', value: 1.25 } : undefined),
          compare(
            `Many stores, ${name}: RSS after reading ${(9 * HOT_STORES).toLocaleString('en-US')} random stores (hotStores ${HOT_STORES.toLocaleString('en-US')})`,
            'MiB',
            pick('full', (run) => mib(run.rssTouched[2])),
            `after ${(6 * HOT_STORES).toLocaleString('en-US')}`,
            pick('full', (run) => mib(run.rssTouched[1])),
            lazy ? { op: '<=', value: 1.1 } : undefined,
          ),
        )
        figures[name] = {
          stores: size,
          fillSeconds: round(filledMs / 1000),
          startMs: { empty: round(median(pick('empty', (run) => run.startMs))), full: round(median(pick('full', (run) => run.startMs))) },
          processToReadyMs: { empty: round(median(pick('empty', (run) => run.processMs))), full: round(median(pick('full', (run) => run.processMs))) },
          rssMiB: { empty: median(pick('empty', (run) => mib(run.rss))), full: median(pick('full', (run) => mib(run.rss))) },
          rssAfterReadingMiB: [0, 1, 2].map((round) => median(pick('full', (run) => mib(run.rssTouched[round] as number)))),
        }
        if (lazy && fanoutOn === undefined) fanoutOn = { kind, where: full }
      }
      if (fanoutOn !== undefined) {
        progress.step(`many stores: ${subscribers.toLocaleString('en-US')} subscribers × 3 random documents`)
        const docs = await fanout(fanoutOn.kind, fanoutOn.where, size, subscribers, undefined, config)
        progress.detail(`p50 ${round(docs.p50)} ms, p99 ${round(docs.p99)} ms`)
        progress.step(`many stores: ${subscribers.toLocaleString('en-US')} subscribers on one store`)
        const single = await fanout(fanoutOn.kind, fanoutOn.where, size, subscribers, 'feed', config)
        progress.detail(`p50 ${round(single.p50)} ms, p99 ${round(single.p99)} ms`)
        comparisons.push(compare(`Many stores: p99 write → last follower, ${subscribers.toLocaleString('en-US')} subscribers × 3 documents`, 'ms', docs.p99Runs, 'the same subscribers on one store', single.p99Runs, { op: '<=', value: 1 }))
        figures.fanout = { subscribers, documents: size, docs: { p50Ms: round(docs.p50), p99Ms: round(docs.p99) }, singleStore: { p50Ms: round(single.p50), p99Ms: round(single.p99) } }
        if (!docs.complete || !single.complete) notes.push('Not every write reached every follower within the timeout.')
      }
    } finally {
      for (const cleanup of cleanups.reverse()) cleanup()
    }
    return {
      id: 'manyStores',
      title: 'Many stores',
      method:
        `Each storage is filled with ${size.toLocaleString('en-US')} documents of about 100 bytes through its own commit path (64 clients), then a server process starts on it and on an empty one, alternately: ` +
        'start is the time from creating the universe to its `ready`; RSS is read after three full collections, once started, then after each of three rounds of reading 3 × hotStores random documents (as requests would): the last two rounds are compared, memory must have levelled off. ' +
        'Fan-out: the subscribers, in another process on the other core, each follow 3 random documents (`?stores=`); the server writes followed documents one at a time (an action, 20 ms apart), each stamped with its commit time; latency is from that stamp to the arrival at the last of its followers. The baseline is the same number of subscribers on one store, written the same way.',
      comparisons,
      figures,
      notes,
    }
  },
}

const mib = (bytes: number) => Math.round(bytes / 1024 / 1024)

function makeWhere(kind: StorageKind, cleanups: Array<() => void>): Where {
  if (kind === 'redis') {
    const namespace = `zuno-bench-many-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
    cleanups.push(() => dropNamespace(namespace))
    return { namespace }
  }
  const dir = mkdtempSync(join(tmpdir(), 'zuno-many-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return { dir }
}

/** Deletes every key of a namespace (a million documents must not stay in the machine's Redis). */
function dropNamespace(namespace: string): void {
  const keys = execFileSync('redis-cli', ['--scan', '--pattern', `{${namespace}}*`], { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 }).split('\n').filter(Boolean)
  for (let i = 0; i < keys.length; i += 500) execFileSync('redis-cli', ['unlink', ...keys.slice(i, i + 500)])
}

function storageArgs(kind: StorageKind, where: Where): string[] {
  return ['--storage', kind, ...(where.dir === undefined ? [] : ['--dir', where.dir]), ...(where.namespace === undefined ? [] : ['--redis', where.namespace])]
}

async function fill(kind: StorageKind, where: Where, count: number): Promise<number> {
  const { child } = await start({ name: `fill ${kind}`, script: 'load/fillStores.ts', core: LOAD_CORE })
  try {
    const filled = await child.ask<{ type: string; ms: number }>({ type: 'fill', kind, count, ...where }, 'filled', 3_600_000)
    return filled.ms
  } finally {
    await child.stop()
  }
}

async function startOnce(kind: StorageKind, where: Where, size: number): Promise<Started> {
  const { child, ready } = await start<{ type: string; startMs: number; processMs: number }>({
    name: `zuno on ${kind}`,
    script: 'servers/manyStoresZuno.ts',
    core: SERVER_CORE,
    args: [...storageArgs(kind, where), '--hot', String(HOT_STORES)],
    nodeFlags: ['--expose-gc'],
  })
  try {
    const memory = async () => (await child.ask<{ type: string; rss: number }>({ type: 'mem' }, 'mem', 60_000)).rss
    const rss = await memory()
    const touched: number[] = []
    for (const seed of [1, 2, 3]) {
      await child.ask({ type: 'touch', count: 3 * HOT_STORES, of: size, seed }, 'touched', 600_000)
      touched.push(await memory())
    }
    return { startMs: ready.startMs, processMs: ready.processMs, rss, rssTouched: touched as [number, number, number] }
  } finally {
    await child.stop()
  }
}

async function fanout(kind: StorageKind, where: Where, size: number, count: number, single: string | undefined, config: BenchConfig) {
  const children: Child[] = []
  try {
    const { child: server, ready } = await start<{ type: string; port: number }>({
      name: `zuno on ${kind}`,
      script: 'servers/manyStoresZuno.ts',
      core: SERVER_CORE,
      args: [...storageArgs(kind, where), '--hot', String(HOT_STORES)],
    })
    children.push(server)
    const { child: load } = await start({ name: 'document subscribers', script: 'load/docSubscribers.ts', core: LOAD_CORE })
    children.push(load)
    const opened = await load.ask<{ type: string; count: number; followers: Array<[string, number]> }>(
      { type: 'open', port: ready.port, count, docs: size, each: 3, seed: 7, single },
      'opened',
      600_000,
    )
    if (opened.count !== count) throw new Error(`${opened.count} of ${count} subscribers connected`)
    const p99Runs: number[] = []
    const p50Runs: number[] = []
    let complete = true
    let first = 1
    const writes = config.quick ? 50 : 200
    for (let rep = 0; rep <= config.reps; rep++) {
      // Followed documents, in a seeded order: each write has followers to reach.
      const chosen = Array.from({ length: writes }, (_, i) => opened.followers[(i * 7919 + rep * 104_729) % opened.followers.length] as [string, number])
      const expected = chosen.map(([, followers]) => followers)
      server.send({ type: 'emit', first, keys: chosen.map(([key]) => key), intervalMs: 20 })
      const delivered = await load.ask<{ type: string; latencies: number[]; complete: boolean }>({ type: 'wait', first, expected, timeoutMs: 120_000 }, 'delivered', 180_000)
      await server.next('emitted', 120_000)
      first += writes
      // The first round warms up and is not counted.
      if (rep === 0) continue
      complete &&= delivered.complete
      p50Runs.push(percentile(delivered.latencies, 50))
      p99Runs.push(percentile(delivered.latencies, 99))
    }
    return { p50: median(p50Runs), p99: median(p99Runs), p99Runs, complete }
  } finally {
    await Promise.all(children.map((child) => child.stop()))
  }
}
