/** Metric 3: memory per idle SSE subscriber, Zuno against a raw SSE server. */
import { LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Suite, type SuiteResult } from '../harness/results'
import { median, round } from '../harness/stats'

interface Memory {
  type: string
  rss: number
  heapUsed: number
  external: number
}

const servers = [
  { id: 'raw', name: 'raw SSE (node:http)', script: 'servers/rawSse.ts' },
  { id: 'expressRaw', name: 'raw SSE route in Express', script: 'servers/expressRawSse.ts' },
  { id: 'zuno', name: 'Zuno on Express', script: 'servers/expressZuno.ts' },
  { id: 'nodeZuno', name: 'Zuno node:http handler', script: 'servers/nodeZuno.ts' },
] as const

export const memory: Suite = {
  id: 'memory',
  title: 'Memory per idle subscriber',
  steps: (config) => config.reps * servers.length,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const subscribers = config.quick ? 1000 : 5000
    const heap = new Map<string, number[]>(servers.map((spec) => [spec.id, []]))
    const rss = new Map<string, number[]>(servers.map((spec) => [spec.id, []]))
    for (let rep = 1; rep <= config.reps; rep++) {
      for (const spec of servers) {
        progress.step(`memory: ${subscribers.toLocaleString('en-US')} idle subscribers on ${spec.name}, run ${rep}/${config.reps}`)
        const { child: server, ready } = await start<{ type: string; port: number }>({
          name: spec.id,
          script: spec.script,
          core: SERVER_CORE,
          nodeFlags: ['--expose-gc'],
        })
        const { child: clients } = await start({ name: 'subscribers', script: 'load/sseSubscribers.ts', core: LOAD_CORE })
        try {
          // One subscriber first, so what is measured is the cost of each further one.
          await clients.ask({ type: 'open', port: ready.port, path: '/zuno/sse', count: 1 }, 'opened')
          const before = await server.ask<Memory>({ type: 'mem' }, 'mem')
          await clients.ask({ type: 'open', port: ready.port, path: '/zuno/sse', count: subscribers }, 'opened', 300_000)
          const after = await server.ask<Memory>({ type: 'mem' }, 'mem')
          heap.get(spec.id)?.push((after.heapUsed + after.external - before.heapUsed - before.external) / subscribers)
          rss.get(spec.id)?.push((after.rss - before.rss) / subscribers)
          progress.detail(`${Math.round(heap.get(spec.id)?.at(-1) ?? 0)} B of heap, ${Math.round(rss.get(spec.id)?.at(-1) ?? 0)} B of RSS per subscriber`)
        } finally {
          await clients.stop()
          await server.stop()
        }
      }
    }
    return {
      id: 'memory',
      title: 'Memory per idle subscriber',
      method: `Zuno runs in Express, so its like-for-like baseline is a hand-written SSE route in the same Express app; a bare node:http SSE server shows what Express itself costs. A fresh server process per run (with --expose-gc); ${subscribers.toLocaleString('en-US')} idle SSE subscribers connect from another process; the growth of the server's JavaScript memory (heap used + external, after full collections) and of its RSS, divided by the number of subscribers.`,
      comparisons: [
        compare('Memory per idle SSE subscriber (heap + external)', 'bytes', heap.get('zuno') as number[], 'raw SSE route in Express', heap.get('expressRaw') as number[], { op: '<=', value: 1.5 }),
        compare('Memory per idle SSE subscriber (RSS)', 'bytes', rss.get('zuno') as number[], 'raw SSE route in Express', rss.get('expressRaw') as number[], { op: '<=', value: 1.5 }),
        compare('Memory per idle SSE subscriber (heap + external) against bare node:http', 'bytes', heap.get('zuno') as number[], 'raw SSE (node:http)', heap.get('raw') as number[]),
        compare('Memory per idle SSE subscriber (heap + external): node:http handler', 'bytes', heap.get('nodeZuno') as number[], 'raw SSE (node:http)', heap.get('raw') as number[], { op: '<=', value: 1.5 }),
        compare('Memory per idle SSE subscriber (RSS): node:http handler', 'bytes', rss.get('nodeZuno') as number[], 'raw SSE (node:http)', rss.get('raw') as number[], { op: '<=', value: 1.5 }),
      ],
      figures: Object.fromEntries(
        servers.map((spec) => [spec.id, { name: spec.name, heapBytesPerSubscriber: round(median(heap.get(spec.id) ?? [])), rssBytesPerSubscriber: round(median(rss.get(spec.id) ?? [])) }]),
      ),
      notes: [],
    }
  },
}
