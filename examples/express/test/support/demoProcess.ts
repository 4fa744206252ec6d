import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const exampleDir = fileURLToPath(new URL('../..', import.meta.url))

/**
 * The demo server as a child process on a data folder of its own: Node itself with tsx as a
 * loader, so one process, and a SIGKILL really kills the server. `stop()` kills what is left and
 * removes the folder.
 */
export function demoProcesses(name: string) {
  const dataDir = mkdtempSync(join(tmpdir(), `zuno-${name}-`))
  const children: ChildProcess[] = []
  return {
    dataDir,
    /** Starts the demo on `port` and resolves once it serves. */
    async start(port: number): Promise<ChildProcess> {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: exampleDir,
        env: { ...process.env, PORT: String(port), ZUNO_DATA_DIR: dataDir },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      children.push(child)
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('Zuno demo on') && resolve())
        child.once('exit', (code) => reject(new Error(`demo exited with ${code}`)))
      })
      return child
    },
    stop(): void {
      for (const child of children) child.kill('SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
