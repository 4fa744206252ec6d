import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const exampleDir = fileURLToPath(new URL('../..', import.meta.url))

/** What a demo process is started with besides its port and folder. */
export interface DemoProcessOptions {
  /** More environment, e.g. `ZUNO_STORAGE`. */
  env?: Record<string, string>
  /** Modules Node imports first (`--import`), after tsx. */
  preload?: string[]
}

/** A demo server child process, with what it printed so far. */
export type DemoChild = ChildProcess & { output(): string }

/**
 * The demo server as a child process on a data folder of its own: Node itself with tsx as a
 * loader, so one process, and a SIGKILL really kills the server. `stop()` kills what is left and
 * removes the folder.
 */
export function demoProcesses(name: string, options: DemoProcessOptions = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), `zuno-${name}-`))
  const children: ChildProcess[] = []
  return {
    dataDir,
    /** Starts the demo on `port` and resolves once it serves (rejects with its output if it exits first). */
    async start(port: number): Promise<DemoChild> {
      const preload = (options.preload ?? []).flatMap((module) => ['--import', module])
      const child = spawn(process.execPath, ['--import', 'tsx', ...preload, 'src/main.ts'], {
        cwd: exampleDir,
        env: { ...process.env, PORT: String(port), ZUNO_DATA_DIR: dataDir, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.push(child)
      let printed = ''
      const keep = (chunk: Buffer) => {
        printed += chunk.toString()
      }
      child.stdout?.on('data', keep)
      child.stderr?.on('data', keep)
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', () => printed.includes('Zuno demo on') && resolve())
        child.once('exit', (code) => reject(new Error(`demo exited with ${code}:\n${printed}`)))
      })
      return Object.assign(child, { output: () => printed })
    },
    stop(): void {
      for (const child of children) child.kill('SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
