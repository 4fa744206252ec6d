/** Metric 1: accepted proposals per second with 50 connections over many stores. */
import { type Child, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Suite, type SuiteResult } from '../harness/results'
import { median, round } from '../harness/stats'

const CONNECTIONS = 50
const STORES_PER_CONNECTION = 20

/**
 * Servers compared with each other: each group is driven at one offered load, so CPU per proposal
 * is measured in the same regime for a Zuno server and its baseline.
 */
const GROUPS = ['node', 'express', 'bun'] as const

const targets = [
  { id: 'node', group: 'node', name: 'node:http JSON route (ceiling)', short: 'node:http', zuno: false, script: 'servers/nodePlain.ts', runtime: 'node' },
  { id: 'expressPlain', group: 'express', name: 'plain Express JSON route', short: 'Express', zuno: false, script: 'servers/expressPlain.ts', runtime: 'node' },
  { id: 'nodeZuno', group: 'node', name: 'Zuno node:http handler', short: 'Zuno+node', zuno: true, script: 'servers/nodeZuno.ts', runtime: 'node' },
  { id: 'expressZuno', group: 'express', name: 'Zuno on Express', short: 'Zuno+Express', zuno: true, script: 'servers/expressZuno.ts', runtime: 'node' },
  { id: 'bunPlain', group: 'bun', name: 'plain Bun.serve JSON route', short: 'Bun.serve', zuno: false, script: 'servers/bunPlain.ts', runtime: 'bun' },
  { id: 'elysiaZuno', group: 'bun', name: 'Zuno on Elysia (Bun)', short: 'Zuno+Elysia', zuno: true, script: 'servers/elysiaZuno.ts', runtime: 'bun' },
  { id: 'bunZuno', group: 'bun', name: 'Zuno fetch handler on Bun.serve', short: 'Zuno+Bun', zuno: true, script: 'servers/bunZuno.ts', runtime: 'bun' },
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

/** One run against one server: what the load saw, and the CPU the server spent meanwhile. */
interface Measured extends LoadResult {
  cpuSeconds: number
}

const GROUP_NAMES = { node: 'node:http', express: 'Express', bun: 'Bun' } as const

/** The share of its slowest member's full-load rate at which a group's servers are compared. */
const EQUAL_LOAD_SHARE = 0.75

export const throughput: Suite = {
  id: 'throughput',
  title: 'Sync throughput',
  steps: (config) => 1 + config.reps * targets.length,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    // Half of each run at full load, half at the runtime's equal offered load.
    const durationMs = config.quick ? 1500 : 10_000
    progress.step(`throughput: starting ${targets.length} servers and the load generator, calibrating`)
    const children: Child[] = []
    try {
      const servers = new Map<TargetId, Child & { port: number }>()
      for (const target of targets) {
        const { child, ready } = await start<{ type: string; port: number }>({
          name: target.id,
          script: target.script,
          runtime: target.runtime,
          core: SERVER_CORE,
        })
        children.push(child)
        servers.set(target.id, Object.assign(child, { port: ready.port }))
      }
      const { child: load } = await start({ name: 'autocannon', script: 'load/proposals.ts', core: LOAD_CORE })
      children.push(load)
      let run = 0
      const drive = async (id: TargetId, ms: number, rate?: number): Promise<Measured> => {
        const server = servers.get(id) as Child & { port: number }
        const before = server.cpuSeconds()
        const command = { type: 'run', port: server.port, connections: CONNECTIONS, storesPerConnection: STORES_PER_CONNECTION, durationMs: ms, run: run++, rate }
        const result = await load.ask<LoadResult & { type: string }>(command, 'result', ms + 60_000)
        const after = server.cpuSeconds()
        return { ...result, cpuSeconds: before === undefined || after === undefined ? Number.NaN : after - before }
      }

      // Warm up and calibrate: each server's full-load rate sets its runtime's equal offered load.
      const calibration = new Map<TargetId, number>()
      for (const target of targets) {
        const result = await drive(target.id, config.quick ? 500 : 2000)
        calibration.set(target.id, result.accepted / result.seconds)
      }
      const equalLoad = new Map<string, number>()
      for (const group of GROUPS) {
        const slowest = Math.min(...targets.filter((target) => target.group === group).map((target) => calibration.get(target.id) as number))
        equalLoad.set(group, Math.max(1000, Math.round((slowest * EQUAL_LOAD_SHARE) / 1000) * 1000))
      }

      const rates = new Map<TargetId, number[]>(targets.map((target) => [target.id, []]))
      const perCpu = new Map<TargetId, number[]>(targets.map((target) => [target.id, []]))
      const busy = new Map<TargetId, number[]>(targets.map((target) => [target.id, []]))
      const latencies = new Map<TargetId, { p50: number[]; p99: number[] }>(targets.map((target) => [target.id, { p50: [], p99: [] }]))
      const notes: string[] = []
      const check = (target: (typeof targets)[number], rep: number, result: Measured, how: string) => {
        if (result.refused > 0 || result.errors > 0) {
          notes.push(`${target.name}, run ${rep} ${how}: ${result.refused} refused and ${result.errors} failed requests`)
        }
      }
      for (let rep = 1; rep <= config.reps; rep++) {
        for (const target of targets) {
          progress.step(`throughput: ${target.name}, run ${rep}/${config.reps}`)
          const full = await drive(target.id, durationMs / 2)
          check(target, rep, full, 'at full load')
          const rate = full.accepted / full.seconds
          rates.get(target.id)?.push(rate)
          busy.get(target.id)?.push(full.cpuSeconds / full.seconds)
          latencies.get(target.id)?.p50.push(full.latencyP50)
          latencies.get(target.id)?.p99.push(full.latencyP99)
          const equal = await drive(target.id, durationMs / 2, equalLoad.get(target.group))
          check(target, rep, equal, 'at equal load')
          perCpu.get(target.id)?.push(equal.accepted / equal.cpuSeconds)
          progress.detail(
            `${Math.round(rate).toLocaleString('en-US')} accepted/s at full load (server ${Math.round((100 * full.cpuSeconds) / full.seconds)} % busy), ` +
              `${Math.round(equal.accepted / equal.cpuSeconds).toLocaleString('en-US')} per CPU-second at ${equalLoad.get(target.group)?.toLocaleString('en-US')}/s`,
          )
        }
      }
      const runs = (id: TargetId) => rates.get(id) as number[]
      const cpuRuns = (id: TargetId) => perCpu.get(id) as number[]
      const perCpuUnit = 'accepted per server CPU-second'
      return {
        id: 'throughput',
        title: 'Sync throughput',
        method:
          `autocannon in its own process (pinned to the other core) with ${CONNECTIONS} connections proposing over ${(CONNECTIONS * STORES_PER_CONNECTION).toLocaleString('en-US')} stores, each request taking a store no other request has in flight and basing its proposal on the version that store's last answer gave, so every proposal is accepted. ` +
          `Each run drives a server ${durationMs / 2000} s at full load (accepted/s) and ${durationMs / 2000} s at an offered load equal for a Zuno server and its baseline, ${Math.round(EQUAL_LOAD_SHARE * 100)} % of the slower one's full-load rate (${[...equalLoad].map(([group, rate]) => `${rate.toLocaleString('en-US')}/s for the ${GROUP_NAMES[group as (typeof GROUPS)[number]]} pair`).join(', ')}), where the server's CPU time (from /proc) gives accepted proposals per CPU-second: what one core of the server sustains. ` +
          'The targets are judged on that figure, because the load generator, one core like the server, cannot saturate the fastest baselines: at full load they idle part of the time (see "busy"), which would flatter every ratio. Servers and runs interleaved.',
        comparisons: [
          compare('Sync throughput: Express adapter', perCpuUnit, cpuRuns('expressZuno'), 'plain Express JSON route', cpuRuns('expressPlain'), { op: '>=', value: 0.9 }),
          compare('Sync throughput: Elysia plugin on Bun', perCpuUnit, cpuRuns('elysiaZuno'), 'plain Bun.serve JSON route', cpuRuns('bunPlain'), { op: '>=', value: 0.8 }),
          compare('Sync throughput: node:http handler, no framework', perCpuUnit, cpuRuns('nodeZuno'), 'node:http JSON route', cpuRuns('node'), { op: '>=', value: 0.8 }),
          compare('Sync throughput: fetch handler on Bun.serve, no framework', perCpuUnit, cpuRuns('bunZuno'), 'plain Bun.serve JSON route', cpuRuns('bunPlain')),
          compare('Sync throughput at full load: node:http handler', 'accepted/s', runs('nodeZuno'), 'node:http JSON route', runs('node')),
          compare('Sync throughput at full load: Express adapter', 'accepted/s', runs('expressZuno'), 'plain Express JSON route', runs('expressPlain')),
          compare('Sync throughput at full load: Elysia plugin on Bun', 'accepted/s', runs('elysiaZuno'), 'plain Bun.serve JSON route', runs('bunPlain')),
          compare('Sync throughput at full load: Express adapter against the node:http ceiling', 'accepted/s', runs('expressZuno'), 'node:http JSON route', runs('node')),
        ],
        figures: Object.fromEntries(
          targets.map((target) => [
            target.id,
            {
              name: target.name,
              short: target.short,
              zuno: target.zuno,
              acceptedPerSecond: round(median(runs(target.id))),
              acceptedPerCpuSecond: round(median(cpuRuns(target.id))),
              cpuMicrosecondsPerProposal: round(1e6 / median(cpuRuns(target.id))),
              busyAtFullLoad: round(median(busy.get(target.id) as number[]), 2),
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
