/**
 * Metric 4: eight writers on one store against eight on a store each, through Zuno's client
 * (rebase, jittered backoff) and through a bare protocol loop (rebase, retry at once).
 */
import { LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Comparison, type Suite, type SuiteResult } from '../harness/results'
import { median, percentile, round } from '../harness/stats'

const WRITERS = 8
const clients = [
  { id: 'replica', name: "Zuno's client" },
  { id: 'protocol', name: 'a bare protocol loop' },
  { id: 'replicaActions', name: "Zuno's client running actions" },
  { id: 'actionLoop', name: 'an action loop' },
  { id: 'actionLoopRedis', name: 'an action loop on two instances over Redis' },
] as const

interface Result {
  type: string
  accepted: number
  seconds: number
  attempts: number[]
  unexpected: number
  gaveUp?: number
}

interface Runs {
  own: number[]
  shared: number[]
  p50: number[]
  p99: number[]
  max: number[]
  gaveUp: number[]
}

export const hotStore: Suite = {
  id: 'hotStore',
  title: 'Hot store',
  steps: (config) => 1 + config.reps * clients.length * 2,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const durationMs = config.quick ? 1000 : 10_000
    progress.step('hot store: starting Zuno on Express and the writers')
    const { child: server, ready } = await start<{ type: string; port: number }>({ name: 'zuno', script: 'servers/expressZuno.ts', core: SERVER_CORE })
    // Two instances on one Redis namespace (the Redis at 127.0.0.1:6379), both on the server core.
    const namespace = `bench-hot-${process.pid}-${Date.now()}`
    const onRedis = await Promise.all(
      [1, 2].map((n) => start<{ type: string; port: number }>({ name: `zuno-redis-${n}`, script: 'servers/expressZuno.ts', core: SERVER_CORE, args: ['--redis', namespace] })),
    )
    const { child: writers } = await start({ name: 'writers', script: 'load/hotWriters.ts', core: LOAD_CORE })
    try {
      let run = 0
      const drive = (client: string, shared: boolean, ms: number) => {
        const ports = client === 'actionLoopRedis' ? onRedis.map(({ ready: instance }) => instance.port) : [ready.port]
        return writers.ask<Result>({ type: 'run', client, port: ready.port, ports, writers: WRITERS, shared, durationMs: ms, label: `r${run++}` }, 'result', ms + 60_000)
      }
      for (const client of clients) await drive(client.id, true, 500)
      const runs = new Map<string, Runs>(clients.map((client) => [client.id, { own: [], shared: [], p50: [], p99: [], max: [], gaveUp: [] }]))
      const notes: string[] = []
      for (let rep = 1; rep <= config.reps; rep++) {
        for (const client of clients) {
          const entry = runs.get(client.id) as Runs
          for (const shared of [false, true]) {
            progress.step(`hot store: ${WRITERS} writers ${shared ? 'on one store' : 'on a store each'}, ${client.name}, run ${rep}/${config.reps}`)
            const result = await drive(client.id, shared, durationMs)
            if (result.unexpected > 0) notes.push(`${client.name}, run ${rep}: ${result.unexpected} answers other than 200${client.id === 'actionLoop' ? '' : ' or 409'}`)
            ;(shared ? entry.shared : entry.own).push(result.accepted / result.seconds)
            if (shared) {
              entry.p50.push(percentile(result.attempts, 50))
              entry.p99.push(percentile(result.attempts, 99))
              entry.max.push(Math.max(...result.attempts))
              entry.gaveUp.push(result.gaveUp ?? 0)
            }
            progress.detail(
              `${Math.round(result.accepted / result.seconds).toLocaleString('en-US')} writes/s, attempts p99 ${percentile(result.attempts, 99)}` +
                (result.gaveUp ? `, ${result.gaveUp} gave up` : ''),
            )
          }
        }
      }
      const comparisons: Comparison[] = clients.map((client) => {
        const entry = runs.get(client.id) as Runs
        return compare(`Hot store: goodput of ${WRITERS} writers on one store, ${client.name}`, 'writes/s', entry.shared, `${WRITERS} writers on a store each`, entry.own)
      })
      return {
        id: 'hotStore',
        title: 'Hot store',
        method:
          `${WRITERS} writers in one process on the other core increment a counter as fast as they can, on one store (contended) or on a store each (uncontended); ${durationMs / 1000} s per run, interleaved. ` +
          "Zuno's client: eight replicas (`connect`) each awaiting `store.set(n => n + 1)`; on a 409 it rebases on the state the answer carries and retries after a jittered backoff that grows from 10 ms, and rejects the write after 10 conflicts (counted as given up). " +
          'Bare protocol loop: one keep-alive connection per writer, rebase and retry at once, never giving up. ' +
          "Zuno's client running actions: the same replicas awaiting `act('increment', { key })` (the server's action; no optimistic effect, since the replicas do not define it). " +
          'Action loop: the same connections sending the `increment` action (`POST /sync` with `action`), which the server runs on its own state: no base version, no 409; any other answer counts as refused. ' +
          'On two instances over Redis: the same loop, writers alternating between two Zuno servers on one Redis namespace (both on the server core, Redis unpinned); an instance whose commit finds the store moved runs the action again at once on the state its commit script returns. Attempts are counted per accepted write.',
        comparisons,
        figures: Object.fromEntries(
          clients.map((client) => {
            const entry = runs.get(client.id) as Runs
            return [
              client.id,
              {
                name: client.name,
                contendedWritesPerSecond: round(median(entry.shared)),
                uncontendedWritesPerSecond: round(median(entry.own)),
                attemptsP50: median(entry.p50),
                attemptsP99: median(entry.p99),
                attemptsMax: median(entry.max),
                gaveUpPerRun: median(entry.gaveUp),
              },
            ]
          }),
        ),
        notes,
      }
    } finally {
      await writers.stop()
      await server.stop()
      for (const { child } of onRedis) await child.stop()
    }
  },
}
