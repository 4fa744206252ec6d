/**
 * Metric 2: one writer, N SSE subscribers in another process. Zuno against a raw SSE write loop
 * and against socket.io, each run twice per round: paced (latency from commit to the last
 * subscriber) and back to back (deliveries per second).
 */
import { type Child, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Comparison, type Suite, type SuiteResult } from '../harness/results'
import { median, percentile, round } from '../harness/stats'

const servers = [
  { id: 'raw', name: 'raw SSE write loop', script: 'servers/rawSse.ts', subscribers: 'load/sseSubscribers.ts' },
  { id: 'zuno', name: 'Zuno on Express', script: 'servers/expressZuno.ts', subscribers: 'load/sseSubscribers.ts' },
  { id: 'socketio', name: 'socket.io broadcast', script: 'servers/socketIo.ts', subscribers: 'load/socketIoSubscribers.ts' },
] as const
type ServerId = (typeof servers)[number]['id']

interface Delivered {
  type: string
  latencies: number[]
  delivered: number
  firstStamp: number
  lastArrival: number
  complete: boolean
}

/** Per server and N: the runs' figures. */
interface Runs {
  p50: number[]
  p99: number[]
  deliveriesPerSecond: number[]
}

/** The subscriber counts of issue #8, in quick runs too. */
const SIZES = [1000, 5000]

export const fanout: Suite = {
  id: 'fanout',
  title: 'Fan-out',
  steps: (config) => SIZES.length * (1 + config.reps * servers.length),
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const runs = new Map<string, Runs>()
    const notes: string[] = []
    const comparisons: Comparison[] = []
    const figures: Record<string, unknown> = {}
    for (const n of SIZES) {
      // Paced events are far enough apart that each one's fan-out ends before the next begins.
      const paced = { count: config.quick ? 10 : 50, intervalMs: Math.max(20, n / 50) }
      const burst = { count: Math.round((config.quick ? 100_000 : 500_000) / n), intervalMs: 0 }
      progress.step(`fan-out N=${n}: starting servers, connecting ${n.toLocaleString('en-US')} subscribers to each`)
      const children: Child[] = []
      try {
        const setups = new Map<ServerId, { server: Child; subscribers: Child; next: number }>()
        for (const spec of servers) {
          const { child: server, ready } = await start<{ type: string; port: number }>({ name: spec.id, script: spec.script, core: SERVER_CORE })
          children.push(server)
          const { child: subscribers } = await start({ name: `${spec.id} subscribers`, script: spec.subscribers, core: LOAD_CORE })
          children.push(subscribers)
          const opened = await subscribers.ask<{ type: string; ms: number; count: number }>(
            { type: 'open', port: ready.port, path: '/zuno/sse', count: n },
            'opened',
            300_000,
          )
          if (opened.count !== n) throw new Error(`${spec.name}: ${opened.count} of ${n} subscribers connected`)
          setups.set(spec.id, { server, subscribers, next: 1 })
        }
        // One warm-up round per server, not counted.
        for (const spec of servers) await phase(setups.get(spec.id)!, { count: 5, intervalMs: 20 }, n)

        for (let rep = 1; rep <= config.reps; rep++) {
          for (const spec of servers) {
            progress.step(`fan-out N=${n}: ${spec.name}, run ${rep}/${config.reps}`)
            const setup = setups.get(spec.id)!
            const latency = await phase(setup, paced, n)
            const throughput = await phase(setup, burst, n)
            if (!latency.complete || !throughput.complete) notes.push(`N=${n}, ${spec.name}, run ${rep}: not every event reached every subscriber within the timeout`)
            const key = `${spec.id}@${n}`
            if (!runs.has(key)) runs.set(key, { p50: [], p99: [], deliveriesPerSecond: [] })
            const entry = runs.get(key)!
            entry.p50.push(percentile(latency.latencies, 50))
            entry.p99.push(percentile(latency.latencies, 99))
            entry.deliveriesPerSecond.push(throughput.delivered / ((throughput.lastArrival - throughput.firstStamp) / 1000))
            progress.detail(
              `p50 ${round(percentile(latency.latencies, 50))} ms, p99 ${round(percentile(latency.latencies, 99))} ms, ` +
                `${Math.round(entry.deliveriesPerSecond.at(-1) ?? 0).toLocaleString('en-US')} deliveries/s`,
            )
          }
        }
      } finally {
        await Promise.all(children.map((child) => child.stop()))
      }
      const get = (id: ServerId) => runs.get(`${id}@${n}`)!
      comparisons.push(
        compare(`Fan-out N=${n}: deliveries per second`, 'deliveries/s', get('zuno').deliveriesPerSecond, 'raw SSE write loop', get('raw').deliveriesPerSecond, { op: '>=', value: 0.8 }),
        compare(`Fan-out N=${n}: p99 commit → last subscriber`, 'ms', get('zuno').p99, 'raw SSE write loop', get('raw').p99, { op: '<=', value: 1.25 }),
        compare(`Fan-out N=${n}: deliveries per second against socket.io`, 'deliveries/s', get('zuno').deliveriesPerSecond, 'socket.io broadcast', get('socketio').deliveriesPerSecond, { op: '>=', value: 1 }),
        compare(`Fan-out N=${n}: p99 commit → last subscriber against socket.io`, 'ms', get('zuno').p99, 'socket.io broadcast', get('socketio').p99, { op: '<=', value: 1 }),
      )
      figures[`N=${n}`] = Object.fromEntries(
        servers.map((spec) => [
          spec.id,
          {
            name: spec.name,
            p50Ms: round(median(get(spec.id).p50)),
            p99Ms: round(median(get(spec.id).p99)),
            deliveriesPerSecond: round(median(get(spec.id).deliveriesPerSecond)),
          },
        ]),
      )
    }
    return {
      id: 'fanout',
      title: 'Fan-out',
      method:
        'Each server runs its own writer; all N subscribers sit in one process on the other core (SSE read by one minimal client for Zuno and raw SSE, socket.io-client over WebSocket for socket.io). ' +
        'Latency: events paced so that fan-outs do not overlap, from the commit stamp in the event to its arrival at the last subscriber, on the machine\'s monotonic clock; p50 and p99 over the events of a run. ' +
        'Throughput: events back to back (the writer yields to I/O between events); deliveries divided by the time from the first commit to the last arrival. The servers\' subscribers stay connected while the others run; runs interleave.',
      comparisons,
      figures,
      notes,
    }
  },
}

async function phase(
  setup: { server: Child; subscribers: Child; next: number },
  shape: { count: number; intervalMs: number },
  n: number,
): Promise<Delivered> {
  const first = setup.next
  setup.next += shape.count
  const timeoutMs = 30_000 + shape.count * (shape.intervalMs + n / 100)
  setup.server.send({ type: 'emit', first, count: shape.count, intervalMs: shape.intervalMs })
  const delivered = await setup.subscribers.ask<Delivered>({ type: 'wait', first, count: shape.count, timeoutMs }, 'delivered', timeoutMs + 10_000)
  await setup.server.next('emitted', 60_000)
  return delivered
}
