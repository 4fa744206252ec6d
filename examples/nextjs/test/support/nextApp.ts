/**
 * The example as a user runs it: `next build` (which also type-checks it), then `next start` on
 * 127.0.0.1, in a process group of its own so that stopping it leaves nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const exampleDir = fileURLToPath(new URL('../..', import.meta.url))
const next = createRequire(`${exampleDir}package.json`).resolve('next/dist/bin/next')
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' }

/** A running `next start`. */
export interface NextApp {
  url: string
  /** What the server has printed so far, stdout and stderr. */
  output(): string
  /** Ends the server's process group and waits for it to exit. */
  stop(): Promise<void>
}

/** Runs `next build` and resolves once it succeeds; rejects with its output if it fails. */
export async function buildApp(): Promise<void> {
  const child = spawn(process.execPath, [next, 'build'], { cwd: exampleDir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const output = collect(child)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`next build exited with ${code}:\n${output()}`)
}

/** Starts the built app on `port` and resolves once it answers. */
export async function startApp(port: number): Promise<NextApp> {
  const child = spawn(process.execPath, [next, 'start', '-H', '127.0.0.1', '-p', String(port)], {
    cwd: exampleDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  const output = collect(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const app: NextApp = { url: `http://127.0.0.1:${port}`, output, stop: () => stopGroup(child, exited) }
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output()}`)
    const answered = await fetch(`${app.url}/zuno/state`).then((response) => response.ok, () => false)
    if (answered) return app
    if (Date.now() > deadline) {
      await app.stop()
      throw new Error(`next start did not answer within 30 s:\n${output()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

function collect(child: ChildProcess): () => string {
  let text = ''
  const append = (chunk: Buffer) => {
    text += chunk.toString()
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  return () => text
}

/** SIGTERM to the whole group, SIGKILL if it is still there after 5 s. */
async function stopGroup(child: ChildProcess, exited: Promise<void>): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), name)
    } catch {
      // The group is gone already.
    }
  }
  if (child.exitCode === null && child.signalCode === null) signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
  // Anything the server started in its group goes with it.
  signal('SIGKILL')
}
