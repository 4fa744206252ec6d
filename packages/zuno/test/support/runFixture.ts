import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The test folder: fixtures are named relative to it (`fixtures/…`). */
const testDir = fileURLToPath(new URL('..', import.meta.url))
const children: ChildProcess[] = []

export interface FixtureOptions {
  /** Added to this process's environment (`DATA_DIR`, …). */
  env?: Record<string, string>
  /** Passed to the fixture after its path. */
  args?: string[]
  /** A file-size limit for the child (`ulimit -f`, in KiB): a real full disk. */
  ulimitKb?: number
  /** Given to Node before the fixture (`--expose-gc`, …). */
  nodeFlags?: string[]
}

/** Runs `test/fixtures/<fixture>` in a child Node process (through bash, for a `ulimit`), so a test meets real processes; `exited` resolves with its output and exit code. */
export function runFixture(fixture: string, options: FixtureOptions = {}) {
  const command = ['exec', JSON.stringify(process.execPath), ...(options.nodeFlags ?? []), '--import', 'tsx', `fixtures/${fixture}`, ...(options.args ?? [])].join(' ')
  const child = spawn('bash', ['-c', options.ulimitKb === undefined ? command : `ulimit -f ${options.ulimitKb}; ${command}`], {
    cwd: testDir,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk
  })
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  )
  /** Resolves once the output so far contains `expected` (or passes it, a test); rejects if the child exits first. */
  const printed = (expected: string | ((stdout: string) => boolean)) =>
    new Promise<void>((resolve, reject) => {
      const check = () => (typeof expected === 'string' ? stdout.includes(expected) : expected(stdout)) && resolve()
      child.stdout?.on('data', check)
      child.once('exit', (code) =>
        reject(new Error(`${fixture} exited with ${code} before printing ${typeof expected === 'string' ? expected : 'what was awaited'}: ${stderr}`)),
      )
      check()
    })
  return { child, exited, printed }
}

/** Kills (SIGKILL) every fixture {@link runFixture} started that still runs, so none outlives its test (call it in `afterEach`). */
export function killFixtures(): void {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
}
