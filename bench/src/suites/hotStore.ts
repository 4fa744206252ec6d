/** Metric 4: eight writers on one store, rebasing and retrying, against eight on stores of their own. */
import { LOAD_CORE, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Suite, type SuiteResult } from '../harness/results'
import { median, percentile, round } from '../harness/stats'

const WRITERS = 8

interface Result {
  type: string
  accepted: number
  seconds: number
  attempts: number[]
  unexpected: number
}

export const hotStore: Suite = {
  id: 'hotStore',
  title: 'Hot store',
  steps: (config) => 1 + config.reps * 2,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const durationMs = config.quick ? 2000 : 10_000
    progress.step('hot store: starting Zuno on Express and the writers')
    const { child: server, ready } = await start<{ type: string; port: number }>({ name: 'zuno', script: 'servers/expressZuno.ts', core: SERVER_CORE })
    const { child: writers } = await start({ name: 'writers', script: 'load/hotWriters.ts', core: LOAD_CORE })
    try {
      let run = 0
      const drive = (shared: boolean, ms: number) =>
        writers.ask<Result>({ type: 'run', port: ready.port, writers: WRITERS, shared, durationMs: ms, label: `r${run++}` }, 'result', ms + 60_000)
      await drive(true, 1000)
      const goodput = { shared: [] as number[], own: [] as number[] }
      const p50: number[] = []
      const p99: number[] = []
      const max: number[] = []
      const notes: string[] = []
      for (let rep = 1; rep <= config.reps; rep++) {
        for (const shared of [false, true]) {
          progress.step(`hot store: ${WRITERS} writers ${shared ? 'on one store' : 'on a store each'}, run ${rep}/${config.reps}`)
          const result = await drive(shared, durationMs)
          if (result.unexpected > 0) notes.push(`run ${rep}: ${result.unexpected} answers other than 200 or 409`)
          ;(shared ? goodput.shared : goodput.own).push(result.accepted / result.seconds)
          if (shared) {
            p50.push(percentile(result.attempts, 50))
            p99.push(percentile(result.attempts, 99))
            max.push(Math.max(...result.attempts))
          }
          progress.detail(`${Math.round(result.accepted / result.seconds).toLocaleString('en-US')} accepted/s, p99 ${percentile(result.attempts, 99)} attempts`)
        }
      }
      return {
        id: 'hotStore',
        title: 'Hot store',
        method: `${WRITERS} writers in one process on the other core, each with its own keep-alive connection, increment a counter: on 409 they rebase on the state the answer carries and retry at once. ${durationMs / 1000} s per run; uncontended (a store each) and contended (one store) runs interleave.`,
        comparisons: [compare(`Hot store: goodput of ${WRITERS} writers on one store`, 'accepted/s', goodput.shared, `${WRITERS} writers on a store each`, goodput.own)],
        figures: {
          contendedAcceptedPerSecond: round(median(goodput.shared)),
          uncontendedAcceptedPerSecond: round(median(goodput.own)),
          attemptsPerAcceptedWrite: { p50: median(p50), p99: median(p99), max: median(max) },
        },
        notes,
      }
    } finally {
      await writers.stop()
      await server.stop()
    }
  },
}
