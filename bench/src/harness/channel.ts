/**
 * How a benchmark's child processes talk to the runner: one JSON object per line, commands on
 * stdin and reports on stdout. Plain lines work the same in Node and in Bun.
 */
import { createInterface } from 'node:readline'

/** A message between the runner and a child; `type` says what it is. */
export interface Message {
  type: string
  [field: string]: unknown
}

/** Sends a report to the runner. */
export function report(message: Message): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

/** Calls `handle` with each command the runner sends; a failure is reported, not thrown. */
export function onCommand(handle: (command: Message) => void | Promise<void>): void {
  const lines = createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    if (line.trim() === '') return
    Promise.resolve()
      .then(() => handle(JSON.parse(line) as Message))
      .catch((error: unknown) => report({ type: 'error', message: String((error as Error)?.stack ?? error) }))
  })
  // The runner went away: so do we, rather than linger as an orphan holding ports.
  lines.on('close', () => process.exit(0))
}

/** Milliseconds on the machine's monotonic clock, comparable between processes on one host. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}
