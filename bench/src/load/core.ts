/**
 * Core, in one process: `store.set` and the notification of N subscribers, Zuno's authoritative
 * store (versioned and logged, in memory) against zustand's `setState`, interleaved run by run.
 */
import { createUniverse } from 'zuno/server'
import { createStore } from 'zustand/vanilla'
import { onCommand, report } from '../harness/channel'

/** Runs `ops` updates and answers the time they took, in ms. */
type Runner = (ops: number) => Promise<number>

let sink = 0
/** A distinct function per subscriber: both libraries keep listeners in a Set, which would fold copies of one. */
const makeListener = () => () => {
  sink += 1
}

async function zunoRunner(subscribers: number): Promise<Runner> {
  const universe = createUniverse({ stores: { counter: 0 } })
  await universe.ready
  const counter = universe.store<number>('counter')
  for (let i = 0; i < subscribers; i++) counter.subscribe(makeListener())
  let value = 0
  return async (ops) => {
    const started = performance.now()
    for (let i = 0; i < ops; i++) await counter.set(++value)
    return performance.now() - started
  }
}

async function zustandRunner(subscribers: number): Promise<Runner> {
  const store = createStore<{ counter: number }>()(() => ({ counter: 0 }))
  for (let i = 0; i < subscribers; i++) store.subscribe(makeListener())
  let value = 0
  return async (ops) => {
    const started = performance.now()
    for (let i = 0; i < ops; i++) store.setState({ counter: ++value })
    return performance.now() - started
  }
}

/** How many ops fill about `targetMs`. */
async function calibrate(run: Runner, targetMs: number): Promise<number> {
  let ops = 10
  for (;;) {
    const ms = await run(ops)
    if (ms >= targetMs / 4 || ops >= 50_000_000) return Math.max(10, Math.round((ops * targetMs) / Math.max(ms, 0.001)))
    ops *= 4
  }
}

onCommand(async (command) => {
  if (command.type !== 'run') return
  const subscribers = command.subscribers as number
  const reps = command.reps as number
  const targetMs = command.targetMs as number
  const zuno = await zunoRunner(subscribers)
  const zustand = await zustandRunner(subscribers)
  // Each side runs as many updates as fill the target time, so neither is timed on a few microseconds.
  const zunoOps = await calibrate(zuno, targetMs)
  const zustandOps = await calibrate(zustand, targetMs)
  const zunoRates: number[] = []
  const zustandRates: number[] = []
  for (let rep = 0; rep < reps; rep++) {
    zustandRates.push(zustandOps / ((await zustand(zustandOps)) / 1000))
    zunoRates.push(zunoOps / ((await zuno(zunoOps)) / 1000))
  }
  report({ type: 'result', zuno: zunoRates, zustand: zustandRates, sink })
})
report({ type: 'ready' })
