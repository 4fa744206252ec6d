/** Writes what a run found: docs/benchmarks/results.json, README.md and its SVG charts. */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { canPin } from './process'
import type { BenchConfig, Comparison, SuiteResult } from './results'
import { barChart, lineChart, type Series } from './svg'

const benchRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const outputDir = join(benchRoot, '..', 'docs', 'benchmarks')

function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function versions(): Record<string, string> {
  const dependency = (name: string) => packageVersion(join(benchRoot, 'node_modules', name))
  let bun = 'unknown'
  try {
    bun = execFileSync(join(benchRoot, 'node_modules', '.bin', 'bun'), ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    // reported as unknown
  }
  return {
    zuno: packageVersion(join(benchRoot, '..', 'packages', 'zuno')),
    node: process.versions.node,
    bun,
    express: dependency('express'),
    elysia: dependency('elysia'),
    'socket.io': dependency('socket.io'),
    zustand: dependency('zustand'),
    react: dependency('react'),
    autocannon: dependency('autocannon'),
  }
}

function machine(): Record<string, unknown> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    pinning: canPin ? 'servers on core 0, load generators on core 1 (taskset)' : 'none (fewer than 2 cores or no taskset)',
  }
}

/** A run's results, as written to results.json. */
export interface Run {
  config: BenchConfig
  results: SuiteResult[]
  failures: string[]
  seconds: number
}

/**
 * Writes the report. A run of some suites only (`--only`) keeps the other suites' results from the
 * previous report, marked with the date they were measured, so the report stays whole.
 */
export async function writeReport(run: Run, partial: boolean): Promise<string[]> {
  mkdirSync(outputDir, { recursive: true })
  const now = new Date().toISOString()
  const stamped = run.results.map((result) => ({ ...result, measuredAt: now }))
  const suites = partial ? mergeWithPrevious(stamped) : stamped
  const document = {
    generatedAt: now,
    mode: run.config.quick ? 'quick' : 'full',
    repetitions: run.config.reps,
    seconds: Math.round(run.seconds),
    machine: machine(),
    versions: versions(),
    comparisons: suites.flatMap((result) => result.comparisons),
    suites,
    failures: run.failures,
  }
  const charts = writeCharts(suites)
  writeFileSync(join(outputDir, 'results.json'), `${JSON.stringify(document, null, 2)}\n`)
  writeFileSync(join(outputDir, 'README.md'), markdown(document, charts))
  return ['docs/benchmarks/results.json', 'docs/benchmarks/README.md', ...charts.map((chart) => `docs/benchmarks/${chart.file}`)]
}

type StampedResult = SuiteResult & { measuredAt: string }

/** Renders README.md and the charts again from results.json, measuring nothing (`--report`). */
export function rewriteReport(): string[] {
  const document = JSON.parse(readFileSync(join(outputDir, 'results.json'), 'utf8')) as Parameters<typeof markdown>[0]
  document.suites = document.suites.map((suite) => ({ ...suite, measuredAt: suite.measuredAt ?? document.generatedAt }))
  const charts = writeCharts(document.suites)
  writeFileSync(join(outputDir, 'README.md'), markdown(document, charts))
  return ['docs/benchmarks/README.md', ...charts.map((chart) => `docs/benchmarks/${chart.file}`)]
}

function mergeWithPrevious(fresh: StampedResult[]): StampedResult[] {
  let previous: StampedResult[] = []
  try {
    const document = JSON.parse(readFileSync(join(outputDir, 'results.json'), 'utf8')) as { generatedAt: string; suites: StampedResult[] }
    previous = document.suites.map((suite) => ({ ...suite, measuredAt: suite.measuredAt ?? document.generatedAt }))
  } catch {
    return fresh
  }
  const merged = previous.map((old) => fresh.find((result) => result.id === old.id) ?? old)
  return [...merged, ...fresh.filter((result) => !previous.some((old) => old.id === result.id))]
}

interface Chart {
  file: string
  title: string
}

function writeCharts(results: SuiteResult[]): Chart[] {
  const charts: Chart[] = []
  const save = (file: string, title: string, svg: string) => {
    writeFileSync(join(outputDir, file), svg)
    charts.push({ file, title })
  }
  const fanout = results.find((result) => result.id === 'fanout')
  if (fanout !== undefined) {
    const sizes = Object.keys(fanout.figures).map((key) => Number(key.slice(2)))
    const byServer = new Map<string, Series>()
    const byServerRate = new Map<string, Series>()
    for (const n of sizes) {
      const servers = fanout.figures[`N=${n}`] as Record<string, { name: string; p99Ms: number; deliveriesPerSecond: number }>
      for (const { name, p99Ms, deliveriesPerSecond } of Object.values(servers)) {
        if (!byServer.has(name)) byServer.set(name, { name, points: [] })
        if (!byServerRate.has(name)) byServerRate.set(name, { name, points: [] })
        byServer.get(name)?.points.push([n, p99Ms])
        byServerRate.get(name)?.points.push([n, deliveriesPerSecond])
      }
    }
    save('fanout-latency.svg', 'Fan-out: p99 from commit to the last subscriber', lineChart({ title: 'p99 commit → last subscriber', xLabel: 'SSE subscribers', yLabel: 'ms (lower is better)', series: [...byServer.values()] }))
    save('fanout-throughput.svg', 'Fan-out: deliveries per second', lineChart({ title: 'Deliveries per second', xLabel: 'SSE subscribers', yLabel: 'deliveries/s (higher is better)', series: [...byServerRate.values()] }))
  }
  const presence = results.find((result) => result.id === 'presence')
  if (presence !== undefined) {
    // Per system, its server's CPU per delivered update at each shape it ran, by its number of peers.
    const bySystem = new Map<string, Series>()
    for (const [shape, point] of Object.entries(presence.figures)) {
      const [, rooms, each] = /^(\d+) rooms? × (\d+) peers/.exec(shape) ?? []
      if (rooms === undefined || each === undefined || typeof point !== 'object' || point === null) continue
      for (const row of Object.values(point as Record<string, Record<string, unknown>>)) {
        const name = String(row.system)
        const value = Number(row['server CPU µs per delivery'])
        if (!Number.isFinite(value)) continue
        if (!bySystem.has(name)) bySystem.set(name, { name, points: [] })
        bySystem.get(name)?.points.push([Number(rooms) * Number(each), value])
      }
    }
    save('presence-cpu.svg', 'Presence: server CPU per delivered update', lineChart({ title: 'Server CPU per delivered update', xLabel: 'peers at 20 Hz (rooms of 100, and one of 50)', yLabel: 'µs (lower is better)', series: [...bySystem.values()] }))
  }
  const throughput = results.find((result) => result.id === 'throughput')
  if (throughput !== undefined) {
    type Figure = { short: string; acceptedPerSecond: number; acceptedPerCpuSecond?: number; zuno: boolean }
    const figures = Object.values(throughput.figures as Record<string, Figure>)
    // Results from before CPU accounting have only the full-load rate.
    const perCpu = figures.every((figure) => figure.acceptedPerCpuSecond !== undefined)
    const bars = figures.map((figure) => ({
      label: figure.short,
      value: perCpu ? (figure.acceptedPerCpuSecond as number) : figure.acceptedPerSecond,
      zuno: figure.zuno,
    }))
    save(
      'throughput.svg',
      'Sync throughput against its baselines',
      perCpu
        ? barChart({ title: 'Accepted proposals per server CPU-second, 50 connections', yLabel: 'accepted per CPU-second (higher is better)', bars })
        : barChart({ title: 'Accepted proposals per second, 50 connections', yLabel: 'accepted/s (higher is better)', bars }),
    )
  }
  const core = results.find((result) => result.id === 'core')
  if (core !== undefined) {
    // A ratio, because the two rates span three orders of magnitude across the subscriber counts.
    const ratio: Series = { name: 'Zuno ÷ zustand', points: [] }
    const target: Series = { name: 'target (1.0)', points: [] }
    for (const comparison of core.comparisons) {
      const n = Number(/notify ([\d,]+)/.exec(comparison.metric)?.[1]?.replace(/,/g, ''))
      ratio.points.push([n, comparison.ratio])
      target.points.push([n, 1])
    }
    save('core.svg', 'Core: store.set against zustand setState', lineChart({ title: 'store.set ÷ setState, updates per second', xLabel: 'subscribers notified', yLabel: 'ratio (higher is better)', series: [ratio, target] }))
  }
  return charts
}

function number(value: number): string {
  return Math.abs(value) >= 1000 ? Math.round(value).toLocaleString('en-US') : String(value)
}

function verdict(comparison: Comparison): string {
  if (comparison.target === undefined) return '—'
  const goal = `${comparison.target.op === '>=' ? '≥' : '≤'} ${comparison.target.value}`
  return comparison.met ? `${goal} ✅` : `${goal} ❌`
}

type Row = Record<string, unknown>

/** A record whose values are all flat records: one table, a row each. */
function isTable(value: unknown): value is Record<string, Row> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const rows = Object.values(value)
  return (
    rows.length > 0 &&
    rows.every((row) => typeof row === 'object' && row !== null && !Array.isArray(row) && Object.values(row).every((cell) => typeof cell !== 'object'))
  )
}

function table(title: string | undefined, rows: Record<string, Row>): string[] {
  // `short` and a true/false `zuno` label the charts; the table has the full name.
  const chartOnly = (column: string) =>
    column === 'short' || (column === 'zuno' && Object.values(rows).every((row) => typeof row[column] === 'boolean'))
  const columns = [...new Set(Object.values(rows).flatMap((row) => Object.keys(row)))].filter((column) => !chartOnly(column))
  const cell = (value: unknown) => (typeof value === 'number' ? number(value) : String(value ?? ''))
  return [
    ...(title === undefined ? [] : [`**${title}**`, '']),
    `| ${columns.join(' | ')} |`,
    `|${columns.map((_, i) => (i === 0 ? ' --- |' : ' ---: |')).join('')}`,
    ...Object.values(rows).map((row) => `| ${columns.map((column) => cell(row[column])).join(' | ')} |`),
    '',
  ]
}

function figuresMarkdown(figures: Record<string, unknown>): string[] {
  if (isTable(figures)) return table(undefined, figures)
  const lines: string[] = []
  for (const [key, value] of Object.entries(figures)) {
    if (typeof value !== 'object' || value === null) lines.push(`- ${key}: ${typeof value === 'number' ? number(value) : String(value)}`)
  }
  if (lines.length > 0) lines.push('')
  for (const [key, value] of Object.entries(figures)) {
    if (typeof value !== 'object' || value === null) continue
    if (isTable(value)) lines.push(...table(key, value))
    else lines.push(`**${key}**`, '', '```json', JSON.stringify(value, null, 2), '```', '')
  }
  return lines
}

function markdown(document: { generatedAt: string; mode: string; repetitions: number; seconds: number; machine: Record<string, unknown>; versions: Record<string, string>; comparisons: Comparison[]; suites: StampedResult[]; failures: string[] }, charts: Chart[]): string {
  const lines = [
    '# Zuno benchmarks',
    '',
    `Written by \`pnpm bench${document.mode === 'quick' ? ' --quick' : ''}\` on ${document.generatedAt.slice(0, 10)}; do not edit by hand. ` +
      (document.suites.some((suite) => suite.measuredAt !== document.generatedAt)
        ? 'Some suites were measured by an earlier run, as their headings say. '
        : `The run took ${document.seconds} s. `) +
      `Every figure is the median of ${document.repetitions} runs, interleaved with its baseline's; every ratio is Zuno's figure over the baseline's. The raw runs are in [results.json](results.json).`,
    '',
    "On Node, every process (servers, baselines and load generators alike) runs compiled JavaScript, and Zuno runs from its packages' builds (`dist`), as a user's server does; Bun runs TypeScript natively and, through the root tsconfig's paths, Zuno's sources. Servers run pinned to one core and every load generator in a process of its own on the other.",
    '',
    'What these figures led us to change, and why some targets are out of reach: [docs/performance.md](../performance.md).',
    '',
    `Machine: ${Object.entries(document.machine).map(([key, value]) => `${key} ${String(value)}`).join('; ')}.`,
    '',
    `Versions: ${Object.entries(document.versions).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    '## Summary',
    '',
    '| Metric | Zuno | Baseline | Ratio | Target |',
    '| --- | ---: | --- | ---: | :---: |',
    ...document.comparisons.map(
      (c) => `| ${c.metric} | ${number(c.zuno)} ${c.unit} | ${c.baselineName}: ${number(c.baseline)} ${c.unit} | ${c.ratio} | ${verdict(c)} |`,
    ),
    '',
    ...(document.failures.length > 0 ? ['**Suites that failed in this run:**', '', ...document.failures.map((failure) => `- ${failure}`), ''] : []),
    '## Charts',
    '',
    ...charts.flatMap((chart) => [`![${chart.title}](${chart.file})`, '']),
  ]
  for (const suite of document.suites) {
    const earlier = suite.measuredAt === document.generatedAt ? '' : ` (from an earlier run, ${suite.measuredAt.slice(0, 16).replace('T', ' ')} UTC)`
    lines.push(`## ${suite.title}${earlier}`, '', suite.method, '', ...figuresMarkdown(suite.figures))
    if (suite.notes.length > 0) lines.push('Notes from this run:', '', ...suite.notes.map((note) => `- ${note}`), '')
  }
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trim()}\n`
}
