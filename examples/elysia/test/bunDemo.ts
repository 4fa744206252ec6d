/** Runs the Elysia demo in a real Bun process, as `pnpm demo:bun` does, on a port and data folder of the test's choosing. */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const bun = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url))
export const haveBun = existsSync(bun)
if (!haveBun && process.env.CI) throw new Error(`Bun is required in CI and missing at ${bun}`)

/** A running Bun demo. */
export interface BunDemo {
  child: ChildProcess
  url: string
  /** What it printed on start. */
  banner: string
  /** What it has logged to stderr so far. */
  errors(): string
  /** Ends the process with `signal` and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

/** What `pnpm demo:bun` runs after `bun`: read from the package, so the test cannot drift from it. */
const startArgs = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start
  .split(' ')
  .slice(1)

export async function startBunDemo(port: number, dataDir: string): Promise<BunDemo> {
  const child = spawn(bun, startArgs, {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, PORT: String(port), ZUNO_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let errors = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    errors += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const banner = await new Promise<string>((resolve, reject) => {
    let output = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Zuno demo on')) resolve(output)
    })
    child.once('exit', (code) => reject(new Error(`bun exited with ${code}: ${errors}`)))
  })
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    banner,
    errors: () => errors,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    },
  }
}
