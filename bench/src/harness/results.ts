/** What a suite measures and how it is reported: figures, and comparisons with their baselines. */
import { median, round } from './stats'

/** A target a ratio must meet, from issue #8. */
export interface Target {
  op: '>=' | '<='
  value: number
}

/** One Zuno figure beside its baseline, both medians of interleaved runs. */
export interface Comparison {
  /** What is compared, such as "Sync throughput: Express". */
  metric: string
  unit: string
  zuno: number
  baselineName: string
  baseline: number
  /** Zuno's figure divided by the baseline's. */
  ratio: number
  target?: Target
  met?: boolean
  runs: { zuno: number[]; baseline: number[] }
}

/** Everything one suite found. */
export interface SuiteResult {
  id: string
  title: string
  /** How it was measured, in a sentence or two. */
  method: string
  comparisons: Comparison[]
  /** Further figures, by name (medians unless the name says otherwise). */
  figures: Record<string, unknown>
  notes: string[]
}

/** Settings shared by every suite. */
export interface BenchConfig {
  quick: boolean
  /** Interleaved repetitions of every measurement; the median is reported. */
  reps: number
}

/** A group of measurements. */
export interface Suite {
  id: string
  title: string
  /** How many progress steps `run` announces. */
  steps(config: BenchConfig): number
  run(config: BenchConfig, progress: import('./progress').Progress): Promise<SuiteResult>
}

/** Builds a comparison from the runs of both sides. */
export function compare(
  metric: string,
  unit: string,
  zunoRuns: number[],
  baselineName: string,
  baselineRuns: number[],
  target?: Target,
): Comparison {
  const zuno = median(zunoRuns)
  const baseline = median(baselineRuns)
  const ratio = zuno / baseline
  const comparison: Comparison = {
    metric,
    unit,
    zuno: round(zuno),
    baselineName,
    baseline: round(baseline),
    ratio: round(ratio),
    runs: { zuno: zunoRuns.map((value) => round(value)), baseline: baselineRuns.map((value) => round(value)) },
  }
  if (target !== undefined) {
    comparison.target = target
    comparison.met = target.op === '>=' ? ratio >= target.value : ratio <= target.value
  }
  return comparison
}
