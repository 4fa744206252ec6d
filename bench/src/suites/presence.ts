/**
 * Presence (issue #18): rooms of 100 peers, each moving its cursor at 20 Hz. Zuno (its rooms
 * coalesced per room per 5 ms tick, one frame per room encoded once) against the same traffic
 * through a plain socket.io room broadcast (one `socket.to(room).emit` per message). Targets: p99
 * delivery latency ≤ 1.25 × socket.io's, server CPU per delivered update ≤ 1 ×. The named shape
 * (100 rooms) and smaller ones, where the load can be generated on this machine.
 */
import { readFileSync } from 'node:fs'
import { type Child, LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Comparison, type Suite, type SuiteResult } from '../harness/results'
import { median, round } from '../harness/stats'

/**
 * The shapes: the 100 rooms × 100 peers, and smaller ones this machine can drive. A
 * socket.io room of 100 peers at 20 Hz is near a core's worth of broadcasting on its own, so one
 * room of 50 peers (49,000 deliveries a second) is where both systems keep up.
 */
const POINTS = [
  { rooms: 1, peersPerRoom: 50 },
  { rooms: 1, peersPerRoom: 100 },
  { rooms: 10, peersPerRoom: 100 },
  { rooms: 100, peersPerRoom: 100 },
]
/** Open files a process may hold here (`ulimit -n`): a point whose connections pass it is not run for that system. */
const MAX_CONNECTIONS = 18_000

const systems = [
  { id: 'socketio', name: 'socket.io room broadcast', script: 'servers/presenceSocketIo.ts', tabsPerStream: 1 },
  { id: 'zuno4', name: 'Zuno, 4 tabs per stream', script: 'servers/presenceZuno.ts', tabsPerStream: 4 },
  { id: 'zuno1', name: 'Zuno, 1 tab per stream', script: 'servers/presenceZuno.ts', tabsPerStream: 1 },
] as const
type SystemId = (typeof systems)[number]['id']

interface LoadResult {
  type: string
  windowMs: number
  made: number
  target: number
  skippedMoves: number
  seenValues: number
  delivered: number
  expected: number
  p50: number
  p99: number
  max: number
  lagP99: number
  errors: number
  errorSample: string
}

interface Run extends LoadResult {
  serverCpuSeconds: number
  loadCpuSeconds: number
  /** Time the server's and the load's main threads were runnable but waited for their core (other processes on it). */
  serverWaitSeconds: number
  loadWaitSeconds: number
  seconds: number
  saturated: string[]
}

/** Each system's connections at a point: socket.io one per peer; Zuno two per stream (its SSE, its requests). */
function connections(id: SystemId, peers: number): number {
  const spec = systems.find((system) => system.id === id)!
  return id === 'socketio' ? peers : 2 * Math.ceil(peers / spec.tabsPerStream)
}

export const presence: Suite = {
  id: 'presence',
  title: 'Presence',
  steps: (config) => POINTS.reduce((sum, { rooms, peersPerRoom }) => sum + (1 + config.reps) * systems.filter((system) => connections(system.id, rooms * peersPerRoom) <= MAX_CONNECTIONS).length, 0),
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const windowMs = config.quick ? 2000 : 4000
    const warmupMs = 1000
    const drainMs = 5000
    const comparisons: Comparison[] = []
    const figures: Record<string, unknown> = {}
    const notes: string[] = [`Load average of the machine when the suite began: ${loadAverage()}.`]
    for (const { rooms, peersPerRoom } of POINTS) {
      const peers = rooms * peersPerRoom
      const shape = `${rooms} room${rooms === 1 ? '' : 's'} × ${peersPerRoom} peers`
      const here = systems.filter((system) => connections(system.id, peers) <= MAX_CONNECTIONS)
      for (const system of systems) {
        if (!here.includes(system)) notes.push(`${shape}: ${system.name} not run: ${connections(system.id, peers).toLocaleString('en-US')} connections pass the ${MAX_CONNECTIONS.toLocaleString('en-US')} open files a process may hold here.`)
      }
      const runs = new Map<SystemId, Run[]>()
      // One system at a time, its processes stopped before the next starts: a saturated server's
      // backlog (socket.io's can take minutes to drain) must not run on the core the next one is measured on.
      for (const system of here) {
        progress.step(`presence, ${shape} at 20 Hz, ${system.name}: starting, connecting ${peers.toLocaleString('en-US')} peers`)
        const children: Child[] = []
        try {
          const { child: server, ready } = await start<{ type: string; port: number }>({ name: `${system.id} server`, script: system.script, core: SERVER_CORE })
          children.push(server)
          const { child: load } = await start({ name: `${system.id} peers`, script: 'load/presencePeers.ts', core: LOAD_CORE })
          children.push(load)
          const opened = await load.ask<{ type: string; ms: number; peers: number }>(
            { type: 'open', system: system.id === 'socketio' ? 'socketio' : 'zuno', port: ready.port, rooms, peersPerRoom, tabsPerStream: system.tabsPerStream },
            'opened',
            600_000,
          )
          progress.detail(`${opened.peers.toLocaleString('en-US')} peers in ${round(opened.ms / 1000)} s`)
          runs.set(system.id, [])
          // A short round, not counted: JIT, buffers.
          await measure({ server, load }, { warmupMs: 500, windowMs: 500, drainMs })
          for (let rep = 1; rep <= config.reps; rep++) {
            progress.step(`presence, ${shape}: ${system.name}, run ${rep}/${config.reps}`)
            const run = await measure({ server, load }, { warmupMs, windowMs, drainMs })
            runs.get(system.id)!.push(run)
            progress.detail(
              `p50 ${round(run.p50)} ms, p99 ${round(run.p99)} ms, ${Math.round(run.delivered / run.seconds).toLocaleString('en-US')} deliveries/s, ` +
                `server ${round((run.serverCpuSeconds / run.delivered) * 1e6)} µs CPU per delivery (${Math.round((100 * run.serverCpuSeconds) / run.seconds)}% of a core), ` +
                `load ${Math.round((100 * run.loadCpuSeconds) / run.seconds)}%, waited for the core: server ${Math.round((100 * run.serverWaitSeconds) / run.seconds)}%, load ${Math.round((100 * run.loadWaitSeconds) / run.seconds)}%, made ${Math.round((100 * run.made) / run.target)}% of the target` +
                (run.seenValues < run.made ? `, superseded ${round((100 * (run.made - run.seenValues)) / run.made)}%` : '') +
                (run.saturated.length > 0 ? `; SATURATED: ${run.saturated.join('; ')}` : ''),
            )
          }
        } finally {
          await Promise.all(children.map((child) => child.stop()))
        }
      }
      // A system saturated at a point when most of its runs were: its latency there means nothing.
      const saturatedAt = (id: SystemId) => {
        const all = runs.get(id) ?? []
        const saturatedRuns = all.filter((run) => run.saturated.length > 0)
        return saturatedRuns.length * 2 > all.length ? [...new Set(saturatedRuns.flatMap((run) => run.saturated))] : []
      }
      const point: Record<string, Record<string, string | number>> = {}
      for (const system of here) {
        const all = runs.get(system.id)!
        const of = (pick: (run: Run) => number) => round(median(all.map(pick)))
        // A median past every bound (most runs delivered nothing of their window in time) reads as such.
        const bounded = (value: number) => (Number.isFinite(value) ? value : 'none arrived')
        const saturated = saturatedAt(system.id)
        point[system.id] = {
          system: system.name,
          connections: connections(system.id, peers),
          'values made/s': of((run) => run.made / run.seconds),
          'target values/s': peers * 20,
          'superseded %': of((run) => (100 * (run.made - run.seenValues)) / run.made),
          'deliveries/s': of((run) => run.delivered / run.seconds),
          'undelivered %': of((run) => (100 * Math.max(0, run.expected - run.delivered)) / run.expected),
          'p50 ms': bounded(of((run) => run.p50)),
          'p99 ms': bounded(of((run) => run.p99)),
          'server CPU µs per delivery': bounded(of((run) => (run.serverCpuSeconds / run.delivered) * 1e6)),
          'server CPU % of a core': of((run) => (100 * run.serverCpuSeconds) / run.seconds),
          'load CPU % of a core': of((run) => (100 * run.loadCpuSeconds) / run.seconds),
          'server waited for its core %': of((run) => (100 * run.serverWaitSeconds) / run.seconds),
          'load waited for its core %': of((run) => (100 * run.loadWaitSeconds) / run.seconds),
          'request errors': of((run) => run.errors),
          saturated: saturated.length === 0 ? 'no' : saturated.join('; '),
        }
        const sample = all.find((run) => run.errorSample !== '')?.errorSample
        if (sample !== undefined) notes.push(`${shape}, ${system.name}: requests refused, e.g. ${sample}`)
      }
      figures[shape] = point
      const baseline = runs.get('socketio')
      for (const system of here) {
        if (system.id === 'socketio' || baseline === undefined) continue
        const zuno = runs.get(system.id)!
        const saturated = [...saturatedAt('socketio').map((why) => `socket.io: ${why}`), ...saturatedAt(system.id).map((why) => `Zuno: ${why}`)]
        // Targets only where both kept up: a saturated side's figures measure the machine, not the server.
        const meaningful = saturated.length === 0
        if (!meaningful) notes.push(`${shape}, ${system.name} against socket.io: no target judged, saturated (${saturated.join('; ')}).`)
        const label = `Presence ${shape}, ${system.name}`
        comparisons.push(
          compare(`${label}: p99 delivery latency`, 'ms', zuno.map((run) => run.p99), 'socket.io room broadcast', baseline.map((run) => run.p99), meaningful ? { op: '<=', value: 1.25 } : undefined),
          compare(
            `${label}: server CPU per delivered update`,
            'µs',
            zuno.map((run) => (run.serverCpuSeconds / run.delivered) * 1e6),
            'socket.io room broadcast',
            baseline.map((run) => (run.serverCpuSeconds / run.delivered) * 1e6),
            meaningful ? { op: '<=', value: 1 } : undefined,
          ),
        )
      }
    }
    notes.push(`Load average of the machine when the suite ended: ${loadAverage()}.`)
    return {
      id: 'presence',
      title: 'Presence',
      method:
        `Rooms of 100 peers (and one of 50); every peer makes a new cursor value \`{ x, y }\` every 50 ms (20 Hz), phases spread evenly over the 50 ms, stamped with the moment it was made. ` +
        'Zuno: peers are tabs on streams opened with `?hello=1`, each stream carrying 4 tabs of one room (a browser with the document open in 4 tabs; at 50 peers, the last stream carries 2) or 1 (every peer its own browser), posting `POST /zuno/presence` as the replica does: each tab\'s latest value, a tab\'s changes at most 20 a second (bursts of 2), the stream\'s requests one at a time and at most 100 a second (bursts of 10); the server sends each room\'s changes at most once per 5 ms tick (its default), the first change after a quiet tick at once. ' +
        'socket.io: peers are sockets (WebSocket) in their room, each emitting every value; the server broadcasts each to the room (`socket.to(room).emit`). ' +
        'All peers of a system sit in one process on the other core, speaking the protocols on bare sockets with the least work a client can do; the server is in its own process on core 0. ' +
        `Each run: 1 s of movement, then a ${windowMs / 1000} s window, then the peers stop and what was made in the window is awaited (at most 5 s). ` +
        'A delivered update is one peer\'s value arriving at one other peer (for Zuno, at each other tab of a stream the frame reached); latency is from the making of the value to its arrival, p50 and p99 over every delivery of the window\'s values. ' +
        'Superseded: values of the window no frame carried by the end of the wait (a later value of the same peer went instead: latest wins; on a saturated server, also values still queued). Server CPU: user + system time of the server process (/proc) over the window, divided by the window\'s deliveries. ' +
        'Saturated: the server used ≥ 90 % of its core (or, with the time it waited for it while other processes ran there, ≥ 90 % of the window), or the load process the same of its own, or made < 97 % of the values it should (it fell behind), or more than 1 % of the deliveries had not arrived 5 s after the window; targets are judged only where neither side saturated. One system runs at a time (its runs consecutive, its processes stopped before the next system starts), and each run begins once the server and the load process are idle.',
      comparisons,
      figures,
      notes,
    }
  },
}

async function measure(setup: { server: Child; load: Child }, shape: { warmupMs: number; windowMs: number; drainMs: number }): Promise<Run> {
  const { server, load } = setup
  const settled = (await settle(server)) && (await settle(load))
  await load.ask({ type: 'move' }, 'moving', 60_000)
  await sleep(shape.warmupMs)
  const server0 = server.cpuSeconds() ?? Number.NaN
  const load0 = load.cpuSeconds() ?? Number.NaN
  const serverWait0 = server.waitSeconds() ?? Number.NaN
  const loadWait0 = load.waitSeconds() ?? Number.NaN
  const started = performance.now()
  load.send({ type: 'window' })
  await sleep(shape.windowMs)
  const server1 = server.cpuSeconds() ?? Number.NaN
  const load1 = load.cpuSeconds() ?? Number.NaN
  const serverWait1 = server.waitSeconds() ?? Number.NaN
  const loadWait1 = load.waitSeconds() ?? Number.NaN
  const seconds = (performance.now() - started) / 1000
  await load.ask({ type: 'windowEnd' }, 'windowEnded', 120_000)
  const result = await load.ask<LoadResult>({ type: 'stop', drainMs: shape.drainMs }, 'result', shape.drainMs + 120_000)
  // Nothing of the window arrived within the drain: its latency is unbounded, not unknown.
  if (result.delivered === 0) result.p50 = result.p99 = result.max = Number.POSITIVE_INFINITY
  const run: Run = { ...result, serverCpuSeconds: server1 - server0, loadCpuSeconds: load1 - load0, serverWaitSeconds: serverWait1 - serverWait0, loadWaitSeconds: loadWait1 - loadWait0, seconds, saturated: [] }
  const busy = (cpu: number, wait: number, who: string) => {
    if (cpu / seconds >= 0.9) run.saturated.push(`${who} at its core's limit`)
    else if ((cpu + wait) / seconds >= 0.9) run.saturated.push(`${who}'s core full (with other processes on it)`)
  }
  if (!settled) run.saturated.push('the previous run had not drained')
  busy(run.serverCpuSeconds, run.serverWaitSeconds, 'server')
  busy(run.loadCpuSeconds, run.loadWaitSeconds, 'load generator')
  if (run.made < 0.97 * run.target) run.saturated.push('load generator behind')
  if (run.expected - run.delivered > 0.01 * run.expected) run.saturated.push('deliveries missing after 5 s')
  return run
}

/** Waits until a process is idle (under 10 % of its core for 200 ms; at most 30 s): a backlog of the last run must not land in the next. Whether it became idle. */
async function settle(child: Child): Promise<boolean> {
  for (let i = 0; i < 150; i++) {
    const before = child.cpuSeconds()
    await sleep(200)
    const after = child.cpuSeconds()
    if (before === undefined || after === undefined || after - before < 0.02) return true
  }
  return false
}

/** The machine's load average (1, 5, 15 min): the benchmark's processes are not alone on it when it passes 2. */
function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(', ')
  } catch {
    return 'unknown'
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
