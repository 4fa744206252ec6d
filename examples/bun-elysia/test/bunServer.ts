/** Runs src/server.ts in a real Bun process, as `pnpm dev` and `pnpm start` do, on a port of the test's choosing. */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../../packages/zuno/test/support/freePort'

export const bun = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url))
export const haveBun = existsSync(bun)
if (!haveBun && process.env.CI) throw new Error(`Bun is required in CI and missing at ${bun}`)

export interface BunServer {
  child: ChildProcess
  url: string
  /** What it has logged to stderr so far. */
  errors(): string
  /** Sends `signal` and resolves with the exit code once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts the server; `production` sets NODE_ENV=production, as `pnpm start` does (Bun then bundles the page once, without hot reloading). */
export async function startBunServer(production: boolean): Promise<BunServer> {
  const port = await freePort()
  const child = spawn(bun, ['src/server.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, PORT: String(port), NODE_ENV: production ? 'production' : 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let errors = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    errors += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    let output = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Listening on')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`bun exited with ${code}: ${errors}`)))
  })
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    errors: () => errors,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}
