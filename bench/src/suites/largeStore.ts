/**
 * Issue #16: a store of 10,000 todos (about 1 MB of JSON), one todo toggled per commit, 1,000 SSE
 * subscribers. Deltas (the writer proposes the patch of its toggle, the server streams it) against
 * whole states (the writer proposes the whole list, so the server has no patch and streams the list),
 * and against a tiny store (a counter) on the same server and subscribers.
 */
import { type Child, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Comparison, type Suite, type SuiteResult } from '../harness/results'
import { median, percentile, round } from '../harness/stats'

const SUBSCRIBERS = 1000

/** The three ways of committing that are compared, each on the same server and subscribers. */
const cases = [
  { id: 'tiny', name: 'tiny store (a counter)', store: 'counter', mode: 'whole' },
  { id: 'deltas', name: '10,000 todos, deltas', store: 'todos', mode: 'patch' },
  { id: 'whole', name: '10,000 todos, whole states', store: 'todos', mode: 'whole' },
] as const
type CaseId = (typeof cases)[number]['id']
type Case = (typeof cases)[number]

interface Committed {
  type: string
  sentAt: number[]
  versions: number[]
  uploadBytes: number[]
}

interface Delivered {
  type: string
  complete: boolean
  delivered: number
  lastArrival: Array<number | null>
  frameBytes: Array<number | null>
  resyncs: number
}

/** Per case: each round's figure. */
interface Runs {
  frameBytes: number[]
  uploadBytes: number[]
  fanoutP50: number[]
  fanoutP99: number[]
  clickP50: number[]
  deliveriesPerSecond: number[]
  burstMsPerCommit: number[]
  serverCpuMsPerCommit: number[]
}

/** Commits per phase: paced ones (each fan-out ends before the next commit) and a burst (back to back). */
function shapes(config: BenchConfig): Record<CaseId, { paced: number; burst: number }> {
  // Whole states are 1 GB of writes per commit at 1,000 subscribers: a few of them say enough. A burst
  // of them stays within what the server queues for a slow subscriber (4 MiB) before it drops it.
  return config.quick
    ? { tiny: { paced: 8, burst: 40 }, deltas: { paced: 8, burst: 40 }, whole: { paced: 1, burst: 2 } }
    : { tiny: { paced: 40, burst: 200 }, deltas: { paced: 40, burst: 200 }, whole: { paced: 4, burst: 3 } }
}

export const largeStore: Suite = {
  id: 'largeStore',
  title: 'Large store',
  steps: (config) => 2 + config.reps * (1 + cases.length),
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const shape = shapes(config)
    const notes: string[] = []
    const runs = new Map<CaseId, Runs>(
      cases.map((c) => [c.id, { frameBytes: [], uploadBytes: [], fanoutP50: [], fanoutP99: [], clickP50: [], deliveriesPerSecond: [], burstMsPerCommit: [], serverCpuMsPerCommit: [] }]),
    )
    const children: Child[] = []
    try {
      progress.step(`large store: starting Zuno on Express with 10,000 todos, a replica toggling one`)
      const { child: server, ready } = await start<{ type: string; port: number }>({ name: 'zuno', script: 'servers/largeStoreZuno.ts', core: SERVER_CORE })
      children.push(server)
      const { child: writer } = await start({ name: 'writer', script: 'load/largeStoreWriter.ts', core: LOAD_CORE })
      children.push(writer)
      const port = ready.port
      const uploaded = await writer.ask<{ type: string; bytes: number; wholeBytes: number; patch: unknown; posts: number; ms: number }>({ type: 'upload', port }, 'uploaded', 60_000)
      await writer.ask({ type: 'load', port }, 'loaded')

      progress.step(`large store: connecting ${SUBSCRIBERS.toLocaleString('en-US')} subscribers (each gets the 1 MB list in its snapshot)`)
      const { child: subscribers } = await start({ name: 'subscribers', script: 'load/frameSubscribers.ts', core: LOAD_CORE })
      children.push(subscribers)
      const opened = await subscribers.ask<{ type: string; count: number; ms: number }>({ type: 'open', port, path: '/zuno/sse?patches=1', count: SUBSCRIBERS }, 'opened', 300_000)
      if (opened.count !== SUBSCRIBERS) throw new Error(`${opened.count} of ${SUBSCRIBERS} subscribers connected`)
      progress.detail(`connected in ${Math.round(opened.ms).toLocaleString('en-US')} ms`)

      const drive = { server, writer, subscribers, port }
      // Warm-up, not counted: every path once or more.
      for (const c of cases) {
        const warm = pacedRun()
        for (let i = 0; i < (c.id === 'whole' ? 1 : 5); i++) await commitOne(drive, c, warm)
      }

      for (let rep = 1; rep <= config.reps; rep++) {
        progress.step(`large store: paced commits, the three cases in turn, run ${rep}/${config.reps}`)
        // One commit of each case in turn (the whole states' fewer ones spread evenly), so that a
        // moment of noise on the machine falls on every case alike.
        const slow = new Map(cases.map((c) => [c.id, pacedRun()]))
        const most = Math.max(...cases.map((c) => shape[c.id].paced))
        for (let i = 0; i < most; i++) {
          for (const c of cases) {
            const count = shape[c.id].paced
            if (Math.floor((i * count) / most) !== Math.floor(((i + 1) * count) / most)) await commitOne(drive, c, slow.get(c.id) as PacedRun)
          }
        }
        for (const c of cases) {
          const entry = runs.get(c.id) as Runs
          const paced = await pacedFigures(drive, c, slow.get(c.id) as PacedRun)
          entry.frameBytes.push(median(paced.delivered.frameBytes.filter((bytes): bytes is number => bytes !== null)))
          entry.uploadBytes.push(median(paced.committed.uploadBytes))
          entry.fanoutP50.push(percentile(paced.fanoutMs, 50))
          entry.fanoutP99.push(percentile(paced.fanoutMs, 99))
          entry.clickP50.push(percentile(paced.clickMs, 50))
          check(notes, paced.delivered, `${c.name}, run ${rep} (paced)`)
          progress.detail(`${c.name}: ${entry.frameBytes.at(-1)?.toLocaleString('en-US')} bytes a delivery; commit → last subscriber p50 ${round(entry.fanoutP50.at(-1) as number)} ms`)
        }
        for (const c of cases) {
          progress.step(`large store: ${c.name}, back to back, run ${rep}/${config.reps}`)
          const entry = runs.get(c.id) as Runs
          const fast = await burst(drive, c, shape[c.id].burst)
          check(notes, fast.delivered, `${c.name}, run ${rep} (back to back)`)
          entry.deliveriesPerSecond.push(fast.deliveriesPerSecond)
          entry.burstMsPerCommit.push(fast.msPerCommit)
          entry.serverCpuMsPerCommit.push(fast.serverCpuMsPerCommit)
          progress.detail(`${Math.round(fast.deliveriesPerSecond).toLocaleString('en-US')} deliveries/s, server CPU ${round(fast.serverCpuMsPerCommit)} ms a commit`)
        }
      }

      const get = (id: CaseId) => runs.get(id) as Runs
      const comparisons: Comparison[] = [
        compare('Large store: bytes per delivery, deltas against whole states', 'bytes', get('deltas').frameBytes, 'whole states', get('whole').frameBytes, { op: '<=', value: 0.01 }),
        compare(
          `Large store: commit → last of ${SUBSCRIBERS.toLocaleString('en-US')} subscribers (p50), deltas against a tiny store`,
          'ms',
          get('deltas').fanoutP50,
          'a counter',
          get('tiny').fanoutP50,
          { op: '<=', value: 1.25 },
        ),
        compare('Large store: server CPU per commit back to back, deltas against a tiny store', 'ms', get('deltas').serverCpuMsPerCommit, 'a counter', get('tiny').serverCpuMsPerCommit),
        compare('Large store: deliveries per second, deltas against a tiny store', 'deliveries/s', get('deltas').deliveriesPerSecond, 'a counter', get('tiny').deliveriesPerSecond),
        compare('Large store: deliveries per second, deltas against whole states', 'deliveries/s', get('deltas').deliveriesPerSecond, 'whole states', get('whole').deliveriesPerSecond),
        compare('Large store: upload per click, a replica with deltas against the whole state', 'bytes', [uploaded.bytes], 'the whole state', [uploaded.wholeBytes]),
      ]
      const figures: Record<string, unknown> = {
        [`${SUBSCRIBERS.toLocaleString('en-US')} subscribers`]: Object.fromEntries(
          cases.map((c) => {
            const entry = get(c.id)
            return [
              c.id,
              {
                name: c.name,
                bytesPerDelivery: round(median(entry.frameBytes)),
                uploadBytesPerCommit: round(median(entry.uploadBytes)),
                commitToLastP50Ms: round(median(entry.fanoutP50)),
                commitToLastP99Ms: round(median(entry.fanoutP99)),
                sendToLastP50Ms: round(median(entry.clickP50)),
                deliveriesPerSecond: round(median(entry.deliveriesPerSecond)),
                msPerCommitBackToBack: round(median(entry.burstMsPerCommit)),
                serverCpuMsPerCommit: round(median(entry.serverCpuMsPerCommit)),
              },
            ]
          }),
        ),
        'upload per click (a replica toggling one todo)': {
          replica: { bytes: uploaded.bytes, wholeStateBytes: uploaded.wholeBytes, posts: uploaded.posts, patch: JSON.stringify(uploaded.patch), setMs: round(uploaded.ms) },
        },
      }
      return {
        id: 'largeStore',
        title: 'Large store',
        method:
          `One Zuno server on Express holds a todo list of 10,000 items (1,000,001 bytes of JSON; \`ids: { '': 'id' }\`, \`merge: true\`) and a counter; ${SUBSCRIBERS.toLocaleString('en-US')} SSE subscribers to every store sit in one process on the other core, and a writer in another. ` +
          "Each todo commit toggles one item's `done`: with deltas the writer proposes the patch Zuno's client makes of that toggle (`[[[{ id }, 'done'], true]]`) and the server streams the patch; with whole states it proposes the whole list, which leaves the server no patch, so it streams the list, as before deltas. The tiny store's commits set the counter. " +
          `Paced: ${shape.deltas.paced} commits of each case per run (${shape.whole.paced} whole), the cases in turn, each sent once the last one reached every subscriber; commit → last subscriber is from the moment the server shows the new version (just before it writes to the streams) to the arrival of the frame's last byte at the last subscriber, on the machine's monotonic clock; send → last is from the writer's request. ` +
          `Back to back: ${shape.deltas.burst} commits (${shape.whole.burst} whole), each sent when the last was answered; deliveries per second are commits × subscribers over the time from the first request to the last arrival, and the server's CPU time (from /proc) is divided by the commits. Bytes per delivery: the SSE frame each subscriber receives. ` +
          "Upload per click: a replica (`connect` with the `eventsource` package) runs `todos.set(list => list.map(t => t.id === id ? { ...t, done: !t.done } : t))`; the body it POSTs, against the same body with the whole list in place of the patch (what it sent before deltas). Back-to-back runs of the cases interleave.",
        comparisons,
        figures,
        notes,
      }
    } finally {
      await Promise.all(children.map((child) => child.stop()))
    }
  },
}

interface Drive {
  server: Child
  writer: Child
  subscribers: Child
  port: number
}

function waitTimeout(c: Case, count: number): number {
  return 30_000 + count * (c.id === 'whole' ? 20_000 : 200)
}

/** What the paced commits of one case found so far. */
interface PacedRun {
  committed: Committed
  delivered: Delivered
}

function pacedRun(): PacedRun {
  return {
    committed: { type: 'committed', sentAt: [], versions: [], uploadBytes: [] },
    delivered: { type: 'delivered', complete: true, delivered: 0, lastArrival: [], frameBytes: [], resyncs: 0 },
  }
}

/** One commit, then a wait until it has reached every subscriber. */
async function commitOne(drive: Drive, c: Case, run: PacedRun): Promise<void> {
  const one = await drive.writer.ask<Committed>({ type: 'commit', port: drive.port, store: c.store, mode: c.mode, count: 1 }, 'committed', 60_000)
  const timeoutMs = waitTimeout(c, 1)
  const got = await drive.subscribers.ask<Delivered>({ type: 'wait', store: c.store, versions: one.versions, timeoutMs }, 'delivered', timeoutMs + 10_000)
  const { committed, delivered } = run
  committed.sentAt.push(...one.sentAt)
  committed.versions.push(...one.versions)
  committed.uploadBytes.push(...one.uploadBytes)
  delivered.complete &&= got.complete
  delivered.delivered += got.delivered
  delivered.lastArrival.push(...got.lastArrival)
  delivered.frameBytes.push(...got.frameBytes)
  delivered.resyncs = got.resyncs
}

/** The paced commits' times, from the server's stamps and the subscribers' arrivals. */
async function pacedFigures(drive: Drive, c: Case, { committed, delivered }: PacedRun) {
  const stamps = await drive.server.ask<{ type: string; at: Array<number | null> }>({ type: 'stamps', store: c.store, versions: committed.versions }, 'stamps')
  const fanoutMs = committed.versions.map((_, i) => (delivered.lastArrival[i] ?? Number.NaN) - (stamps.at[i] ?? Number.NaN))
  const clickMs = committed.versions.map((_, i) => (delivered.lastArrival[i] ?? Number.NaN) - (committed.sentAt[i] as number))
  return { committed, delivered, fanoutMs, clickMs }
}

/** Notes a phase in which a commit missed a subscriber or a subscriber was dropped. */
function check(notes: string[], delivered: Delivered, label: string): void {
  if (!delivered.complete) notes.push(`${label}: not every commit reached every subscriber within the timeout`)
  if (delivered.resyncs > 0) notes.push(`${label}: ${delivered.resyncs} subscribers dropped for falling behind so far`)
}

/** Commits back to back, then waits for every subscriber to have every one. */
async function burst(drive: Drive, c: Case, count: number) {
  const cpuBefore = drive.server.cpuSeconds()
  const committed = await drive.writer.ask<Committed>({ type: 'commit', port: drive.port, store: c.store, mode: c.mode, count }, 'committed', 120_000)
  const timeoutMs = waitTimeout(c, count)
  const delivered = await drive.subscribers.ask<Delivered>({ type: 'wait', store: c.store, versions: committed.versions, timeoutMs }, 'delivered', timeoutMs + 10_000)
  const cpuAfter = drive.server.cpuSeconds()
  const lastArrival = Math.max(...delivered.lastArrival.map((at) => at ?? Number.NaN))
  const seconds = (lastArrival - (committed.sentAt[0] as number)) / 1000
  return {
    delivered,
    deliveriesPerSecond: delivered.delivered / seconds,
    msPerCommit: (seconds * 1000) / count,
    serverCpuMsPerCommit: cpuBefore === undefined || cpuAfter === undefined ? Number.NaN : ((cpuAfter - cpuBefore) * 1000) / count,
  }
}
