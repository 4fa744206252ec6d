/**
 * `pnpm bench [--quick] [--only a,b]`: runs the benchmark suites, prints progress, and writes
 * docs/benchmarks/results.json and docs/benchmarks/README.md with its charts. `--only` re-measures
 * some suites and keeps the others' last results; `--report` only renders the README again.
 */
import { canPin } from './harness/process'
import { Progress } from './harness/progress'
import { rewriteReport, writeReport } from './harness/report'
import type { BenchConfig, Suite, SuiteResult } from './harness/results'
import { core } from './suites/core'
import { fanout } from './suites/fanout'
import { hotStore } from './suites/hotStore'
import { largeStore } from './suites/largeStore'
import { manyStores } from './suites/manyStores'
import { memory } from './suites/memory'
import { presence } from './suites/presence'
import { reconnect } from './suites/reconnect'
import { throughput } from './suites/throughput'

const suites: Suite[] = [throughput, fanout, memory, hotStore, reconnect, core, largeStore, manyStores, presence]

const args = process.argv.slice(2)
if (args.includes('--report')) {
  console.log(`Rewrote ${rewriteReport().join(' and ')} from docs/benchmarks/results.json.`)
  process.exit()
}
const quick = args.includes('--quick')
const onlyIndex = args.indexOf('--only')
const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? '').split(',')) : undefined
const unknown = only && [...only].filter((id) => !suites.some((suite) => suite.id === id))
if (unknown && unknown.length > 0) {
  console.error(`Unknown suite(s): ${unknown.join(', ')}. Suites: ${suites.map((suite) => suite.id).join(', ')}`)
  process.exit(2)
}

const config: BenchConfig = { quick, reps: quick ? 3 : 5 }
const selected = suites.filter((suite) => only === undefined || only.has(suite.id))
const progress = new Progress(selected.reduce((sum, suite) => sum + suite.steps(config), 0))
console.log(
  `Zuno benchmarks (${quick ? 'quick' : 'full'}): ${selected.map((suite) => suite.title).join(', ')}; ` +
    `medians of ${config.reps} interleaved runs; ${canPin ? 'servers pinned to core 0, load to core 1' : 'no pinning here'}`,
)

const started = Date.now()
const results: SuiteResult[] = []
const failures: string[] = []
for (const suite of selected) {
  try {
    results.push(await suite.run(config, progress))
  } catch (error) {
    failures.push(`${suite.title}: ${(error as Error).message}`)
    console.error(`\n${suite.title} failed: ${(error as Error).stack}`)
  }
}
const written = await writeReport({ config, results, failures, seconds: (Date.now() - started) / 1000 }, only !== undefined)
console.log(`\nWrote ${written.join(' and ')} in ${Math.round((Date.now() - started) / 1000)} s.`)
for (const result of results) {
  for (const c of result.comparisons) {
    const verdict = c.met === undefined ? '' : c.met ? '  target met' : `  TARGET MISSED (${c.target?.op} ${c.target?.value})`
    console.log(`${c.metric}: ${c.zuno} vs ${c.baseline} ${c.unit} = ${c.ratio}×${verdict}`)
  }
}
if (failures.length > 0) {
  console.error(`\n${failures.length} suite(s) failed:\n${failures.join('\n')}`)
  process.exitCode = 1
}
// Children are stopped by now; sockets some libraries leave behind must not hold the process.
process.exit()
