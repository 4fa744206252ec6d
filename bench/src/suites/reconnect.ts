/**
 * Metric 5: 1,000 clients resume after a server restart (file storage, which keeps the epoch and
 * the recent events), against the same clients connecting afresh. Every client checks that the
 * versions it sees have no gap.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Child, freePort, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Suite, type SuiteResult } from '../harness/results'
import { round } from '../harness/stats'

const CLIENTS = 1000
/** Events written before the restart, and right after it, while the clients are away. */
const BEFORE = 100
const AFTER = 20

interface Current {
  type: string
  current: number
  lastCurrentAt: number
  gaps: number
  snapshots: number
  resumes: number
}

export const reconnect: Suite = {
  id: 'reconnect',
  title: 'Reconnect storm',
  steps: (config) => config.reps * 2,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const fresh: number[] = []
    const storm: number[] = []
    const problems: string[] = []
    let resumed = 0
    for (let rep = 1; rep <= config.reps; rep++) {
      const dir = mkdtempSync(join(tmpdir(), 'zuno-bench-'))
      const port = await freePort()
      const launch = () =>
        start<{ type: string; port: number; at: number }>({ name: 'zuno (file storage)', script: 'servers/expressZuno.ts', args: ['--data', dir, '--port', String(port)], core: SERVER_CORE })
      let server: Child | undefined
      let clients: Child | undefined
      try {
        progress.step(`reconnect: ${CLIENTS.toLocaleString('en-US')} fresh connects, run ${rep}/${config.reps}`)
        server = (await launch()).child
        server.send({ type: 'emit', first: 1, count: BEFORE / 2, intervalMs: 0 })
        await server.next('emitted')
        clients = (await start({ name: 'storm clients', script: 'load/stormClients.ts', core: LOAD_CORE })).child
        const opening = await clients.ask<{ type: string; at: number }>({ type: 'open', port, count: CLIENTS, version: BEFORE / 2 }, 'opening')
        const connected = await clients.ask<Current>({ type: 'await', version: BEFORE / 2, timeoutMs: 60_000 }, 'current', 70_000)
        if (connected.current !== CLIENTS) problems.push(`run ${rep}: ${connected.current} of ${CLIENTS} clients got the snapshot`)
        fresh.push(connected.lastCurrentAt - opening.at)
        progress.detail(`all current ${round(fresh.at(-1) ?? 0)} ms after connecting`)

        progress.step(`reconnect: restart under ${CLIENTS.toLocaleString('en-US')} clients, run ${rep}/${config.reps}`)
        server.send({ type: 'emit', first: BEFORE / 2 + 1, count: BEFORE / 2, intervalMs: 0 })
        await server.next('emitted')
        const live = await clients.ask<Current>({ type: 'await', version: BEFORE, timeoutMs: 60_000 }, 'current', 70_000)
        if (live.current !== CLIENTS) problems.push(`run ${rep}: ${live.current} of ${CLIENTS} clients got the live events`)
        await server.stop()
        const restarted = await launch()
        server = restarted.child
        // Written at once, before most clients are back: they must come to them by replay.
        server.send({ type: 'emit', first: BEFORE + 1, count: AFTER, intervalMs: 0 })
        const back = await clients.ask<Current>({ type: 'await', version: BEFORE + AFTER, timeoutMs: 60_000 }, 'current', 70_000)
        if (back.current !== CLIENTS) problems.push(`run ${rep}: ${back.current} of ${CLIENTS} clients caught up after the restart`)
        if (back.gaps > 0) problems.push(`run ${rep}: ${back.gaps} gaps in the versions clients saw`)
        if (back.snapshots > CLIENTS) problems.push(`run ${rep}: ${back.snapshots - CLIENTS} clients needed a snapshot to resume`)
        resumed += back.resumes
        storm.push(back.lastCurrentAt - restarted.ready.at)
        progress.detail(`all current ${round(storm.at(-1) ?? 0)} ms after the restart; ${back.gaps} gaps; ${back.resumes} resumed`)
      } finally {
        await clients?.stop()
        await server?.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    }
    if (problems.length > 0) throw new Error(`The reconnect storm lost events or clients:\n${problems.join('\n')}`)
    return {
      id: 'reconnect',
      title: 'Reconnect storm',
      method:
        `Zuno on Express with file storage. ${CLIENTS.toLocaleString('en-US')} SSE clients in another process (at most 128 connection attempts in flight, retry every 20 ms). ` +
        `Fresh: from the first connect to the last client holding the snapshot. Storm: the server is stopped and started again on the same port and data, ${AFTER} events are written at once, ` +
        `and the clock runs from the new process being ready to the last client having every event by replay (Last-Event-ID) or live. Each client checks that versions arrive one by one; any gap fails the suite.`,
      comparisons: [compare('Reconnect storm: all clients current after a restart', 'ms', storm, 'fresh connects', fresh, { op: '<=', value: 1.5 })],
      figures: { clients: CLIENTS, gaps: 0, resumedStreams: resumed / config.reps },
      notes: [],
    }
  },
}
