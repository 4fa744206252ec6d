/** Metric 6: `store.set` with N subscribers against zustand, and React re-render counts with selectors. */
import { type Child, Child as ChildProcess, SERVER_CORE, start } from '../harness/process'
import type { Progress } from '../harness/progress'
import { type BenchConfig, compare, type Comparison, type Suite, type SuiteResult } from '../harness/results'
import { median } from '../harness/stats'

const SUBSCRIBERS = [1, 10, 100, 1000, 10_000]

/** What load/renders.tsx reports: rows rendered per update, by selector kind and library. */
interface RenderCounts {
  type: string
  rows: number
  ideal: Record<string, number>
  value: Record<'zuno' | 'zustand', Record<string, number>>
  object: Record<'zuno' | 'zustand', Record<string, number>>
}

export const core: Suite = {
  id: 'core',
  title: 'Core, locally',
  steps: () => SUBSCRIBERS.length + 1,
  async run(config: BenchConfig, progress: Progress): Promise<SuiteResult> {
    const comparisons: Comparison[] = []
    const figures: Record<string, unknown> = {}
    for (const n of SUBSCRIBERS) {
      progress.step(`core: store.set with ${n.toLocaleString('en-US')} subscribers, Zuno and zustand`)
      let child: Child | undefined
      try {
        child = (await start({ name: 'core', script: 'load/core.ts', core: SERVER_CORE })).child
        const result = await child.ask<{ type: string; zuno: number[]; zustand: number[] }>(
          { type: 'run', subscribers: n, reps: config.reps, targetMs: config.quick ? 150 : 500 },
          'result',
        )
        comparisons.push(compare(`Core: store.set + notify ${n.toLocaleString('en-US')} subscriber${n === 1 ? '' : 's'}`, 'updates/s', result.zuno, 'zustand setState', result.zustand, { op: '>=', value: 1 }))
        progress.detail(`${Math.round(median(result.zuno)).toLocaleString('en-US')} against ${Math.round(median(result.zustand)).toLocaleString('en-US')} updates/s`)
      } finally {
        await child?.stop()
      }
    }
    progress.step('core: React re-render counts with selectors')
    // React's `act` exists only in its development build; counts do not depend on the build.
    const renders = new ChildProcess({ name: 'renders', script: 'load/renders.tsx', core: SERVER_CORE, env: { NODE_ENV: 'development' } })
    try {
      const counts = await renders.next<RenderCounts>('result')
      const rows: Record<string, Record<string, unknown>> = {}
      for (const mode of ['value', 'object'] as const) {
        for (const [update, ideal] of Object.entries(counts.ideal)) {
          rows[`${mode}: ${update}`] = {
            update,
            selector: mode === 'value' ? 'picks a number' : 'builds an object (shallow equality)',
            ideal,
            zuno: counts[mode].zuno[update],
            zustand: counts[mode].zustand[update],
          }
        }
      }
      figures[`Rows rendered per update, of ${counts.rows}`] = rows
    } finally {
      await renders.stop()
    }
    return {
      id: 'core',
      title: 'Core, locally',
      method:
        "One process on one core. Zuno: `await store.set(n)` on a server universe (in memory), which commits a new version to the log and notifies the store's subscribers; zustand: `setState({ counter: n })`, which notifies its subscribers. Each side runs as many updates as fill about 0.5 s (0.15 s with --quick), the two interleaved run by run; every subscriber is a distinct function. React: 100 rows, each selecting its own item with `useStore(key, selector)` or zustand's `useStore(store, selector)`, rendered under happy-dom; rows rendered per update are counted.",
      comparisons,
      figures,
      notes: [],
    }
  },
}
