/** Metric 1: accepted proposals per second with 50 connections over many stores. */
import { type Child, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Suite, type SuiteResult } from '../harness/results'
import { median, round } from '../harness/stats'

const CONNECTIONS = 50
const STORES_PER_CONNECTION = 20

const targets = [
  { id: 'node', name: 'node:http JSON route (ceiling)', short: 'node:http', zuno: false, script: 'servers/nodePlain.ts', runtime: 'node' },
  { id: 'expressPlain', name: 'plain Express JSON route', short: 'Express', zuno: false, script: 'servers/expressPlain.ts', runtime: 'node' },
  { id: 'nodeZuno', name: 'Zuno node:http handler', short: 'Zuno+node', zuno: true, script: 'servers/nodeZuno.ts', runtime: 'node' },
  { id: 'expressZuno', name: 'Zuno on Express', short: 'Zuno+Express', zuno: true, script: 'servers/expressZuno.ts', runtime: 'node' },
  { id: 'bunPlain', name: 'plain Bun.serve JSON route', short: 'Bun.serve', zuno: false, script: 'servers/bunPlain.ts', runtime: 'bun' },
  { id: 'elysiaZuno', name: 'Zuno on Elysia (Bun)', short: 'Zuno+Elysia', zuno: true, script: 'servers/elysiaZuno.ts', runtime: 'bun' },
  { id: 'bunZuno', name: 'Zuno fetch handler on Bun.serve', short: 'Zuno+Bun', zuno: true, script: 'servers/bunZuno.ts', runtime: 'bun' },
] as const

type TargetId = (typeof targets)[number]['id']

interface LoadResult {
  accepted: number
  refused: number
  errors: number
  seconds: number
  latencyP50: number
  latencyP99: number
}

export const throughput: Suite = {
  id: 'throughput',
  title: 'Sync throughput',
  steps: (config) => 1 + config.reps * targets.length,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const durationMs = config.quick ? 1500 : 10_000
    progress.step(`throughput: starting ${targets.length} servers and the load generator, warming up`)
    const children: Child[] = []
    try {
      const servers = new Map<TargetId, number>()
      for (const target of targets) {
        const { child, ready } = await start<{ type: string; port: number }>({
          name: target.id,
          script: target.script,
          runtime: target.runtime,
          core: SERVER_CORE,
        })
        children.push(child)
        servers.set(target.id, ready.port)
      }
      const { child: load } = await start({ name: 'autocannon', script: 'load/proposals.ts', core: LOAD_CORE })
      children.push(load)
      let run = 0
      const drive = (port: number, ms: number) =>
        load.ask<LoadResult & { type: string }>(
          { type: 'run', port, connections: CONNECTIONS, storesPerConnection: STORES_PER_CONNECTION, durationMs: ms, run: run++ },
          'result',
          ms + 60_000,
        )
      for (const target of targets) await drive(servers.get(target.id) as number, config.quick ? 500 : 1000)

      const rates = new Map<TargetId, number[]>(targets.map((target) => [target.id, []]))
      const latencies = new Map<TargetId, { p50: number[]; p99: number[] }>(targets.map((target) => [target.id, { p50: [], p99: [] }]))
      const notes: string[] = []
      for (let rep = 1; rep <= config.reps; rep++) {
        for (const target of targets) {
          progress.step(`throughput: ${target.name}, run ${rep}/${config.reps}`)
          const result = await drive(servers.get(target.id) as number, durationMs)
          if (result.refused > 0 || result.errors > 0) {
            notes.push(`${target.name}, run ${rep}: ${result.refused} refused and ${result.errors} failed requests`)
          }
          const rate = result.accepted / result.seconds
          rates.get(target.id)?.push(rate)
          latencies.get(target.id)?.p50.push(result.latencyP50)
          latencies.get(target.id)?.p99.push(result.latencyP99)
          progress.detail(`${Math.round(rate).toLocaleString('en-US')} accepted/s, p99 ${result.latencyP99} ms`)
        }
      }
      const runs = (id: TargetId) => rates.get(id) as number[]
      return {
        id: 'throughput',
        title: 'Sync throughput',
        method: `autocannon in its own process (pinned to another core) with ${CONNECTIONS} connections proposing over ${(CONNECTIONS * STORES_PER_CONNECTION).toLocaleString('en-US')} stores, each request taking a store no other request has in flight and basing its proposal on the version that store's last answer gave, so every proposal is accepted. ${durationMs / 1000} s per run; servers and runs interleaved. On Bun the load generator itself tops out near 25,000 requests a second, so the Bun ratios understate the gap in server CPU (measured aside: about 35 µs per request for Zuno's fetch handler against 27 µs for the plain route).`,
        comparisons: [
          compare('Sync throughput: Express adapter', 'accepted/s', runs('expressZuno'), 'plain Express JSON route', runs('expressPlain'), { op: '>=', value: 0.9 }),
          compare('Sync throughput: Elysia plugin on Bun', 'accepted/s', runs('elysiaZuno'), 'plain Bun.serve JSON route', runs('bunPlain'), { op: '>=', value: 0.8 }),
          compare('Sync throughput: node:http handler, no framework', 'accepted/s', runs('nodeZuno'), 'node:http JSON route', runs('node'), { op: '>=', value: 0.8 }),
          compare('Sync throughput: Express adapter against the node:http ceiling', 'accepted/s', runs('expressZuno'), 'node:http JSON route', runs('node')),
          compare('Sync throughput: fetch handler on Bun.serve, no framework', 'accepted/s', runs('bunZuno'), 'plain Bun.serve JSON route', runs('bunPlain')),
        ],
        figures: Object.fromEntries(
          targets.map((target) => [
            target.id,
            {
              name: target.name,
              short: target.short,
              zuno: target.zuno,
              acceptedPerSecond: round(median(runs(target.id))),
              latencyP50Ms: median(latencies.get(target.id)?.p50 ?? []),
              latencyP99Ms: median(latencies.get(target.id)?.p99 ?? []),
            },
          ]),
        ),
        notes,
      }
    } finally {
      await Promise.all(children.map((child) => child.stop()))
    }
  },
}
